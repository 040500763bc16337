"""s3:aws-buckets on a default run: dnf's repository file read as dnf does, and the verdict from S3's answers to
anonymous GETs (checks/aws_buckets_probe), with and without the endpoint policy. Literal inputs, cited."""
import json
import os
import threading

from vpce_doctor import aws_buckets, dnf_repo, policy
from vpce_doctor.checks import aws_buckets as check
from vpce_doctor.checks import aws_buckets_probe as probe
from vpce_doctor.model import Status

REGION = "ap-northeast-1"
ENDPOINT = "vpce-0s3gateway0000001"
# amazon-linux-repo-s3's [amazonlinux] section as an instance prints it (a public CDK patch-baseline source, search
# tool id 52468894850) and the older form quoted in amazonlinux/amazon-linux-2023#535.
REPO_S3 = ("[amazonlinux]\nname=Amazon Linux 2023 repository\nmirrorlist=https://al2023-repos-$awsregion-de612dc2.s3"
           "$dualstack.$awsregion.$awsdomain/core/mirrors/$releasever/$basearch/$mirrorlist\npriority=10\nenabled=1\n"
           "repo_gpgcheck=0\ntype=rpm\ngpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-amazon-linux-2023\n")
REPO_535 = ("[amazonlinux]\nmirrorlist=https://al2023-repos-$awsregion-de612dc2.s3.dualstack.$awsregion.$awsdomain/"
            "core/mirrors/$releasever/$basearch/mirror.list\nenabled=1\n")
# amazon-linux-repo-cdn (container images), as the chef yum_amazon_repo resource's default shows it.
REPO_CDN = ("[amazonlinux]\nname=Amazon Linux 2023 repository\nmirrorlist=https://cdn.amazonlinux.com/al2023/core/"
            "mirrors/$releasever/$basearch/mirror.list\nenabled=1\n")
# /etc/dnf/vars on AL2023 ("amazonlinux:2023 ships these in /etc/dnf/vars", search tool id 68844983784).
VARS = {"awsregion": REGION, "awsdomain": "amazonaws.com", "dualstack": ".dualstack", "mirrorlist": "mirror.list",
        "releasever": "latest", "basearch": "x86_64"}
MIRROR = (f"https://al2023-repos-{REGION}-de612dc2.s3.dualstack.{REGION}.amazonaws.com/core/mirrors/latest/x86_64/"
          "mirror.list")
MANIFEST = f"https://s3.{REGION}.amazonaws.com/amazon-ssm-{REGION}/ssm-agent-manifest.json"
# S3's answer to an anonymous caller outside the bucket's account: the generic AccessDenied (S3 User Guide,
# troubleshoot-403-errors, "Access denied message examples"), in S3's error shape (S3 API reference, ErrorResponses).
DENIED = {"status": 403, "code": "AccessDenied", "message": "Access Denied", "s3": True, "ms": 21.0}
SERVED = {"status": 206, "code": None, "message": None, "s3": True, "ms": 18.0}


def where(endpoint=None):
    return probe.Where(endpoint, "vpc-0a1b2c3d", REGION, "aws", "Amazon Linux 2023.6.20241121")


def test_the_repository_file_gives_dnfs_own_url():
    assert dnf_repo.mirror_url(REPO_S3, VARS) == MIRROR
    assert dnf_repo.mirror_url(REPO_535, VARS) == MIRROR
    assert dnf_repo.mirror_url(REPO_S3, {**VARS, "releasever": "2023.6.20241121"}).endswith(
        "/core/mirrors/2023.6.20241121/x86_64/mirror.list")
    assert dnf_repo.s3_object(MIRROR) == (f"al2023-repos-{REGION}-de612dc2", "core/mirrors/latest/x86_64/mirror.list")
    assert dnf_repo.s3_object(MANIFEST) == (f"amazon-ssm-{REGION}", "ssm-agent-manifest.json")  # path style


def test_a_repository_not_on_s3_or_unreadable_gives_none():
    cdn = dnf_repo.mirror_url(REPO_CDN, VARS)
    assert cdn == "https://cdn.amazonlinux.com/al2023/core/mirrors/latest/x86_64/mirror.list"
    assert dnf_repo.s3_object(cdn) is None
    assert dnf_repo.mirror_url(REPO_S3.replace("enabled=1", "enabled=0"), VARS) is None
    assert dnf_repo.mirror_url(REPO_S3, {k: v for k, v in VARS.items() if k != "dualstack"}) is None  # unknown $var
    assert dnf_repo.mirror_url("[amazonlinux]\n" + "#" * 10_000_000 + "\nmirrorlist=https://x/", VARS) is None
    assert dnf_repo.mirror_url("not a repo file", VARS) is None


def test_dnf_variables_and_the_file_are_read_bounded(tmp_path):
    (tmp_path / "etc/yum.repos.d").mkdir(parents=True)
    (tmp_path / "etc/dnf/vars").mkdir(parents=True)
    (tmp_path / "etc/yum.repos.d/amazonlinux.repo").write_text(REPO_S3)
    for name in ("dualstack", "mirrorlist"):
        (tmp_path / f"etc/dnf/vars/{name}").write_text(VARS[name] + "\n")
    (tmp_path / "etc/dnf/vars/awsregion").write_text("eu-west-3\nignored\n")  # the first line only
    os.mkfifo(tmp_path / "etc/dnf/vars/releasever")  # no writer: a blocking open would hang

    def path(absolute):
        return tmp_path / absolute.lstrip("/")
    done = []
    worker = threading.Thread(target=lambda: done.append(dnf_repo.locate(path, REGION, "amazonaws.com", "aarch64")),
                              daemon=True)
    worker.start()
    worker.join(5)
    assert done == ["https://al2023-repos-eu-west-3-de612dc2.s3.dualstack.eu-west-3.amazonaws.com/core/mirrors/"
                    "latest/aarch64/mirror.list"]
    assert dnf_repo.locate(lambda a: tmp_path / "missing" / a.lstrip("/"), REGION, "amazonaws.com", "x86_64") is None


def test_the_instances_repository_file_decides_the_repository_bucket():
    buckets = aws_buckets.needed(REGION, "amzn", "2023")
    other = MIRROR.replace("latest", "2023.6.20241121")
    replaced, url = check.with_dnf_repo(buckets, lambda: other)
    assert url == other and replaced[0].url == other and replaced[0].key.startswith("core/mirrors/2023.6")
    dropped, _ = check.with_dnf_repo(buckets, lambda: "https://cdn.amazonlinux.com/al2023/core/mirrors/x/mirror.list")
    assert [b.name for b in dropped] == [b.name for b in buckets[1:]]  # dnf does not use S3 there
    assert check.with_dnf_repo(buckets, lambda: None) == (buckets, None)
    assert check.with_dnf_repo(aws_buckets.needed(REGION, "ubuntu", "22.04"), lambda: 1 / 0)[1] is None  # not read


def test_served_objects_pass_on_a_default_run():
    buckets = aws_buckets.needed(REGION, "amzn", "2023")
    result = probe.assess(buckets, {MIRROR: SERVED, MANIFEST: SERVED}, None, where())
    assert result.status is Status.PASS
    assert f"al2023-repos-{REGION}-de612dc2, amazon-ssm-{REGION}" in result.summary
    assert [r["probe"]["outcome"] for r in result.evidence["buckets"][:2]] == ["allowed", "allowed"]


def test_a_bare_403_to_dnf_is_the_endpoint_policy_and_names_the_statement_to_add():
    buckets = aws_buckets.needed(REGION, "amzn", "2023")
    result = probe.assess(buckets, {MIRROR: DENIED, MANIFEST: SERVED}, None, where())
    assert result.status is Status.WARN and result.code == "aws-bucket-blocked"
    assert f"s3://al2023-repos-{REGION}-de612dc2/core/mirrors/latest/x86_64/mirror.list" in result.summary
    assert "403 AccessDenied" in result.summary and "amazon-ssm" not in result.summary
    assert "`dnf update`" in result.cause and "no principal" in result.cause and "then anonymously" not in result.cause
    added = json.loads(result.remedy.text.split(": ", 1)[1].split("}. ", 1)[0] + "}")
    assert added["Resource"] == [f"arn:aws:s3:::al2023-repos-{REGION}-de612dc2/*"] and added["Principal"] == "*"
    assert result.remedy.commands[0].startswith("aws ec2 describe-vpc-endpoints --filters Name=vpc-id,Values="
                                                "vpc-0a1b2c3d Name=service-name,Values=com.amazonaws."
                                                f"{REGION}.s3")


def test_the_agents_manifest_denied_explains_its_signed_then_anonymous_download():
    result = probe.assess(aws_buckets.ssm_agent(REGION), {MANIFEST: DENIED}, None, where())
    assert result.code == "aws-bucket-blocked" and "the SSM agent's self-update" in result.cause
    assert "then anonymously" in result.cause and "artifact.go" in result.cause


def test_with_the_policy_read_the_unprobed_buckets_are_judged_and_a_disagreement_said():
    buckets = aws_buckets.needed(REGION, "amzn", "2023")
    only_ours = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::vpclab-probe/*"}]}
    judged = check.assess({"id": ENDPOINT, "type": "Gateway", "policy": json.dumps(only_ours)}, buckets, None,
                          policy.request_context(None, ENDPOINT, "vpc-0a1b2c3d"))
    result = probe.assess(buckets, {MIRROR: DENIED, MANIFEST: SERVED}, judged, where(ENDPOINT))
    assert result.code == "aws-bucket-blocked"
    assert f"{ENDPOINT}'s policy blocks aws-ssm-{REGION}" in result.summary  # no key to ask for: the policy says
    assert result.evidence["disagreements"] == [f"amazon-ssm-{REGION}: S3 let the read through though the policy "
                                                "as read blocks it"]
    assert "S3's answer stands" in result.cause
    assert not result.remedy.commands[0].startswith("aws ec2 describe-vpc-endpoints --filters")  # the id is known


def test_answers_that_are_not_s3s_denial_are_said_as_they_are():
    buckets = aws_buckets.needed(REGION, "amzn", "2023")
    proxy = {"status": 403, "code": None, "message": None, "s3": False, "server": "squid/5.5", "ms": 3.0}
    result = probe.assess(buckets, {MIRROR: proxy, MANIFEST: {"error": "timeout", "ms": 3000.0}}, None, where())
    assert result.status is Status.WARN and result.code == "aws-bucket-unanswered"
    assert "403 from squid/5.5 that is not S3" in result.summary and "no answer (timeout)" in result.summary
    assert probe.outcome({"status": 404, "code": "NoSuchKey", "s3": True}) == "other"


def test_a_mirror_list_not_on_s3_is_said_not_judged():
    cdn = "https://cdn.amazonlinux.com/al2023/core/mirrors/latest/x86_64/mirror.list"
    buckets, url = check.with_dnf_repo(aws_buckets.needed(REGION, "amzn", "2023"), lambda: cdn)
    result = probe.assess(buckets, {MANIFEST: SERVED}, None, probe.Where(None, "vpc-0a1b2c3d", REGION, repo_url=url))
    assert result.status is Status.PASS and f"dnf's mirror list is {cdn}, not on S3" in result.summary
