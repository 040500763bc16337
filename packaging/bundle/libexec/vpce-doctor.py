"""Entry point of the vendored bundle: put the bundle's lib/ first on sys.path, then run vpce-doctor.

Started by bin/vpce-doctor as `python3 -I -S -B`, so sys.path holds only the standard library here."""
import os
import sys

if sys.version_info < (3, 9):
    sys.stderr.write("vpce-doctor: needs Python >= 3.9; %s is %d.%d\n"
                     % (sys.executable, sys.version_info[0], sys.version_info[1]))
    sys.exit(70)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "lib"))

from vpce_doctor.cli import console_main  # noqa: E402

console_main()
