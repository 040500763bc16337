"""Which names the instance's software will dial, from the settings that change them: botocore's (the environment,
then the shared config file's profile) and the SSM agent's (its config file and its own environment). Pure: the
values are read by checks/names.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlsplit

# botocore configprovider.py BOTOCORE_DEFAULT_SESSION_VARIABLES (botocore 1.44.8): (config-file key, variable).
# The environment wins over the config file (botocore's ChainProvider order).
STS_REGIONAL = ("sts_regional_endpoints", "AWS_STS_REGIONAL_ENDPOINTS")
DUALSTACK = ("use_dualstack_endpoint", "AWS_USE_DUALSTACK_ENDPOINT")
FIPS = ("use_fips_endpoint", "AWS_USE_FIPS_ENDPOINT")
ENDPOINT_URL = ("endpoint_url", "AWS_ENDPOINT_URL")
IGNORE_URLS = ("ignore_configured_endpoint_urls", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
IMDS_MODE = ("ec2_metadata_service_endpoint_mode", "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")
# botocore args.py LEGACY_GLOBAL_STS_REGIONS: with sts_regional_endpoints = legacy, STS in these Regions is dialled
# at the global sts.amazonaws.com (which has no IPv6 and no VPC endpoint name).
LEGACY_GLOBAL_STS_REGIONS = frozenset((
    "ap-northeast-1", "ap-south-1", "ap-southeast-1", "ap-southeast-2", "ca-central-1", "eu-central-1",
    "eu-north-1", "eu-west-1", "eu-west-2", "eu-west-3", "sa-east-1", "us-east-1", "us-east-2", "us-west-1",
    "us-west-2"))
# AWS_ENDPOINT_URL_<SERVICE ID>: botocore configprovider._get_service_env_var_name, the client name through
# utils.CLIENT_NAME_TO_HYPHENIZED_SERVICE_ID_OVERRIDES ('logs' → 'cloudwatch-logs'), upper case, '-' → '_'.
SERVICE_IDS = {"logs": "CLOUDWATCH_LOGS", "monitoring": "CLOUDWATCH"}
# Services botocore has a client for among those the doctor plans (ssmmessages and ec2messages have none).
BOTOCORE_SERVICES = frozenset(("ssm", "s3", "sts", "logs", "kms", "ec2", "monitoring", "dynamodb"))
# The SSM agent's clients (its endpoint helper builds one name per service; UseDualStackEndpoint makes them all
# dual-stack, aws/amazon-ecs-agent#4931).
AGENT_SERVICES = frozenset(("ssm", "ssmmessages", "ec2messages", "s3", "kms", "logs"))
# partitions.json outputs.dualStackDnsSuffix by dnsSuffix (botocore 1.44.8 data/partitions.json).
DUALSTACK_SUFFIX = {"amazonaws.com": "api.aws", "amazonaws.com.cn": "api.amazonwebservices.com.cn",
                    "amazonaws.eu": "api.amazonwebservices.eu", "c2s.ic.gov": "api.aws.ic.gov",
                    "sc2s.sgov.gov": "api.aws.scloud", "cloud.adc-e.uk": "api.cloud-aws.adc-e.uk",
                    "csp.hci.ic.gov": "api.aws.hci.ic.gov"}
TRUE = ("true",)


@dataclass(frozen=True)
class Setting:
    value: str
    where: str   # "AWS_USE_FIPS_ENDPOINT=true in the doctor's environment", "use_fips_endpoint = true in <file> [p]"


@dataclass(frozen=True)
class Dialled:
    service: str
    name: str
    kind: str       # global-sts, dualstack, fips, endpoint-url
    setting: str    # the Setting.where that produces it
    who: str        # "SDKs and the AWS CLI" or "the SSM agent"


def botocore_settings(environ: Mapping[str, str], profile: Mapping[str, str], source: str) -> Dict[str, Setting]:
    """{config key: Setting} as botocore resolves them: the variable, else the profile's key."""
    found: Dict[str, Setting] = {}
    keys = [STS_REGIONAL, DUALSTACK, FIPS, ENDPOINT_URL, IGNORE_URLS, IMDS_MODE]
    keys += [(f"endpoint_url:{s}", f"AWS_ENDPOINT_URL_{SERVICE_IDS.get(s, s.upper())}") for s in BOTOCORE_SERVICES]
    for key, variable in keys:
        if environ.get(variable, "").strip():
            value = environ[variable].strip()
            found[key] = Setting(value, f"{variable}={_shown(value)} in {source}")
        elif ":" not in key and profile.get(key, "").strip():
            value = profile[key].strip()
            found[key] = Setting(value, f"{key} = {_shown(value)} in {profile.get('__where__')}")
    return found


def _shown(value: str) -> str:
    """A value as reports may print it: an endpoint URL's user:password hidden, and short."""
    from .redact import url
    return url(value)[:200]


def botocore_names(services: Sequence[str], region: str, domain: str,
                   settings: Mapping[str, Setting]) -> List[Dialled]:
    """The names botocore builds for these services under these settings, where they differ from the default."""
    ignore_urls = _true(settings.get("ignore_configured_endpoint_urls"))
    fips, dualstack = settings.get("use_fips_endpoint"), settings.get("use_dualstack_endpoint")
    names = []
    for service in (s for s in services if s in BOTOCORE_SERVICES):
        url = None if ignore_urls else settings.get(f"endpoint_url:{service}") or settings.get("endpoint_url")
        if url:
            names.append(Dialled(service, _url_host(url.value), "endpoint-url", url.where, "SDKs and the AWS CLI"))
            continue
        on_fips, on_dual = _true(fips), _true(dualstack)
        if on_fips or on_dual:
            why = " and ".join(s.where for s in (fips, dualstack) if s is not None and _true(s))
            names.append(Dialled(service, variant(service, region, domain, on_fips, on_dual),
                                 "fips" if on_fips else "dualstack", why, "SDKs and the AWS CLI"))
        elif service == "sts" and _legacy(settings.get("sts_regional_endpoints"), region):
            names.append(Dialled(service, "sts.amazonaws.com", "global-sts",
                                 settings["sts_regional_endpoints"].where, "SDKs and the AWS CLI"))
    return names


def agent_names(services: Sequence[str], region: str, domain: str, config_dualstack: Optional[str],
                environ: Mapping[str, str], overridden: Sequence[str]) -> List[Dialled]:
    """The SSM agent's names: its config's UseDualStackEndpoint, or AWS_USE_DUALSTACK_ENDPOINT /
    AWS_USE_FIPS_ENDPOINT in its environment (aws-sdk-go's session/env_config.go reads both; the agent vendors it
    under extra/aws-sdk-go). A service whose Endpoint the agent's config overrides keeps that name."""
    env = {k: environ.get(v, "").strip().lower() for k, v in (("fips", FIPS[1]), ("dual", DUALSTACK[1]))}
    fips = env["fips"] in TRUE
    dual = bool(config_dualstack) or env["dual"] in TRUE
    if not (fips or dual):
        return []
    why = " and ".join(w for w, on in (
        (config_dualstack or "", bool(config_dualstack)),
        (f"{FIPS[1]}=true in the SSM agent's environment", fips),
        (f"{DUALSTACK[1]}=true in the SSM agent's environment", env["dual"] in TRUE)) if on)
    return [Dialled(s, variant(s, region, domain, fips, dual), "fips" if fips else "dualstack", why, "the SSM agent")
            for s in services if s in AGENT_SERVICES and s not in overridden]


def variant(service: str, region: str, domain: str, fips: bool, dualstack: bool) -> str:
    """The endpoint rule sets' names (botocore data/<service>/*/endpoint-rule-set-1.json): <svc>-fips.<region>.
    <dnsSuffix>, <svc>.<region>.<dualStackDnsSuffix>; S3's own: s3-fips.dualstack.<region>.amazonaws.com."""
    if service == "s3":
        label = "s3-fips" if fips else "s3"
        return f"{label}.dualstack.{region}.{domain}" if dualstack else f"{label}.{region}.{domain}"
    label = f"{service}-fips" if fips else service
    return f"{label}.{region}.{DUALSTACK_SUFFIX.get(domain, 'api.aws') if dualstack else domain}"


def imds_mode_problem(imds_endpoint: str, settings: Mapping[str, Setting], environ: Mapping[str, str]) -> str:
    """IMDS answered only over IPv6: botocore asks http://169.254.169.254 unless ec2_metadata_service_endpoint_mode
    is IPv6 (utils.InstanceMetadataFetcher._select_base_url) or an endpoint is set. "" when that is fine."""
    if "[" not in imds_endpoint or environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT"):
        return ""
    mode = settings.get("ec2_metadata_service_endpoint_mode")
    if mode and mode.value.lower() == "ipv6":
        return ""
    return mode.where if mode else "no ec2_metadata_service_endpoint_mode (botocore's default: IPv4)"


def imds_ipv6_mode(settings: Mapping[str, Setting], environ: Mapping[str, str]) -> str:
    """Where SDKs are told to ask IMDS at [fd00:ec2::254] (endpoint mode IPv6, no explicit endpoint), else ""."""
    mode = settings.get("ec2_metadata_service_endpoint_mode")
    if environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or not mode or mode.value.lower() != "ipv6":
        return ""
    return mode.where


def _true(setting: Optional[Setting]) -> bool:
    return setting is not None and setting.value.lower() in TRUE


def _legacy(setting: Optional[Setting], region: str) -> bool:
    return setting is not None and setting.value.lower() == "legacy" and region in LEGACY_GLOBAL_STS_REGIONS


def _url_host(url: str) -> str:
    try:
        return (urlsplit(url if "://" in url else "https://" + url).hostname or "")[:253]
    except ValueError:
        return ""


def parse_profile(text: str, profile: str, where: str) -> Tuple[Dict[str, str], str]:
    """The profile's keys from a shared config file (INI: [default], [profile NAME]); (keys, problem)."""
    import configparser
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    try:
        parser.read_string(text, where)
    except configparser.Error as error:
        return {}, f"{where} is not a valid config file: {str(error).splitlines()[0][:200]}"
    section = "default" if profile == "default" else f"profile {profile}"
    if not parser.has_section(section):
        return {}, ""
    return {**{k: v for k, v in parser.items(section)}, "__where__": f"{where} [{section}]"}, ""
