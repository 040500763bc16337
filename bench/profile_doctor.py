"""Profile one vpce-doctor run with pyinstrument, every thread included (run inside the lab by bench/run.py --profile).

    python bench/profile_doctor.py OUT_PREFIX [vpce-doctor args...]

pyinstrument samples only the thread that started it, and the doctor does its work in probe threads while the main
thread waits, so each thread gets its own Profiler (threading.Thread.run is wrapped) and the sessions are written:
OUT_PREFIX.main.txt (the main thread: wall clock of the run), OUT_PREFIX.threads.txt (all other threads combined:
thread time, waits on the network included) and OUT_PREFIX.html (main thread). pyinstrument is not a dependency of
the project: `.venv/bin/python -m pip install pyinstrument`.
"""
import sys
import threading

from pyinstrument import Profiler
from pyinstrument.renderers import ConsoleRenderer, HTMLRenderer
from pyinstrument.session import Session

INTERVAL = 0.001
sessions = []
lock = threading.Lock()
original_run = threading.Thread.run


def profiled_run(self):
    profiler = Profiler(interval=INTERVAL, async_mode="disabled")
    profiler.start()
    try:
        original_run(self)
    finally:
        session = profiler.stop()
        with lock:
            sessions.append(session)


def main() -> int:
    prefix, argv = sys.argv[1], sys.argv[2:]
    threading.Thread.run = profiled_run
    profiler = Profiler(interval=INTERVAL, async_mode="disabled")
    profiler.start()
    from vpce_doctor.cli import main as doctor_main  # imports are part of the cost
    code = doctor_main(argv)
    sys.stdout.flush()
    main_session = profiler.stop()
    threading.Thread.run = original_run
    with open(prefix + ".main.txt", "w") as out:
        out.write(ConsoleRenderer(unicode=True, color=False, time="seconds").render(main_session))
    with open(prefix + ".html", "w") as out:
        out.write(HTMLRenderer().render(main_session))
    with lock:
        done = list(sessions)
    if done:
        combined = done[0]
        for other in done[1:]:
            combined = Session.combine(combined, other)
        with open(prefix + ".threads.txt", "w") as out:
            out.write(f"{len(done)} threads combined (thread time, not wall time)\n")
            out.write(ConsoleRenderer(unicode=True, color=False, time="seconds").render(combined))
    return code


if __name__ == "__main__":
    sys.exit(main())
