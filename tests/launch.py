"""Run vpce-doctor as its console script does, on a host of the test's making:

    python tests/launch.py [--root DIR] [--port N] [--lib DIR] -- ARGS...

--root and --port are main()'s host seams (vpce_doctor.cli.main; no setting, variable or flag of the doctor can
change them); --lib puts a vendored bundle's lib/ first on sys.path, as its libexec/vpce-doctor.py does, so the
bundle's own code and libraries run. Signals, exit codes and os._exit are the console script's (cli.console_main).
"""
import argparse
import os
import sys


def main() -> None:
    parser = argparse.ArgumentParser(prog="tests/launch.py")
    parser.add_argument("--root", default="/", help="where the doctor reads /etc, /var and /proc from")
    parser.add_argument("--port", type=int, default=443, help="the endpoints' TCP port")
    parser.add_argument("--lib", help="a bundle's lib/ directory, put first on sys.path")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- then the doctor's arguments")
    options = parser.parse_args()
    args = options.args[1:] if options.args[:1] == ["--"] else options.args
    if options.lib:
        sys.path.insert(0, os.path.abspath(options.lib))
    sys.argv = ["vpce-doctor", *args]
    from vpce_doctor.cli import console_main
    console_main(root=options.root, port=options.port)


if __name__ == "__main__":
    main()
