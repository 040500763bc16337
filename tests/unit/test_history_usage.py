"""vpce-doctor history's command line: a bad argument is one line and exit 64, before any network."""
import io

import pytest

from vpce_doctor import cli


@pytest.mark.parametrize("argv, said", [
    (["--hours", "0"], "--hours must be between 0 and 2160"),
    (["--hours", "2161"], "--hours must be between 0 and 2160"),
    (["--since", "yesterday"], "--since 'yesterday' is not a UTC time"),
    (["--since", "2020-01-01T00:00:00Z"], "--since: at most 90 days back"),
    (["--timeout", "0"], "--timeout must be between 0 and 600 seconds"),
    (["--instance-id", "i-nope; rm -rf /"], "is not an instance id like i-0123456789abcdef0"),
    (["--instance-id", "i-0123456789abcdef0", "--region", "mars-1"], "--region 'mars-1' is not a Region name"),
    (["--output", "yaml"], "invalid choice: 'yaml'"),
    ([], "this is not an EC2 instance whose IMDS answers: pass --instance-id"),
])
def test_a_bad_argument_is_one_line_and_exit_64(argv, said):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["history", *argv], environ={"AWS_EC2_METADATA_DISABLED": "true"}, stdout=out, stderr=err)
    assert code == 64 and out.getvalue() == ""
    assert err.getvalue().startswith("vpce-doctor history: ") and said in err.getvalue()
    assert err.getvalue().count("\n") == 1
