"""Nothing an `llmops` command starts outlives it: a normal exit, an exception, SIGTERM or Ctrl-C.

The leak is Prefect's (3.8): its temporary server (`SubprocessASGIServer`) is stopped only by
an `atexit` hook, and a process ended by SIGTERM's default action runs no `atexit` hooks. Both
paths that meet SIGTERM end there: Prefect's flow engine reports the run as crashed, restores
the handler it found and sends the signal again; uvicorn drains its requests, restores the
handler it found and raises the signal again. So the workaround is to leave a handler for them
to find that exits the interpreter normally, and to stop at exit any child of ours that is
still running. Remove it once Prefect stops its server on SIGTERM itself.

One more gap is CPython's: the exception a signal handler raises is dropped ("Exception ignored
in ...") when the handler happens to run inside a finalizer or weakref callback, and the signal
is lost. Seen here mid-training, so the signal is sent again until the process ends.
"""

import atexit
import os
import signal
import sys
import threading
from types import FrameType

import psutil

# How long children get to stop after SIGTERM before they are killed.
STOP_GRACE_S = 5.0
# How long a process that was told to stop gets before it is told again. Longer than Prefect's
# crash report takes, so a repeat does not interrupt it; a repeat is harmless to a draining
# uvicorn (only a second SIGINT forces its exit, and repeats are SIGTERM).
REPEAT_SIGNAL_AFTER_S = 5.0


def stop_children_on_exit() -> None:
    """Make SIGTERM end this process like Ctrl-C does (cleanly, running exit hooks), make sure a
    stop signal is never lost, and stop every child process still running when it exits.

    Call it from the main thread, before anything else installs signal handlers.
    """
    signal.signal(signal.SIGTERM, _exit_on_signal)
    _watch_stop_signals()
    # Registered before Prefect's own hook, so it runs after it (atexit is last in, first out)
    # and finds only what Prefect did not stop.
    atexit.register(stop_children)


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    sys.exit(128 + signum)  # the exit status a shell reports for a process killed by `signum`


def _watch_stop_signals() -> None:
    """Notice SIGTERM and SIGINT whichever handler takes them (CPython writes each signal's
    number to the wakeup fd before any handler runs), and repeat SIGTERM until the process
    ends."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    threading.Thread(
        target=_repeat_stop_signal, args=(read_end,), name="llmops-stop-signal", daemon=True
    ).start()


def _repeat_stop_signal(read_end: int) -> None:
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    while not stop_signals & set(os.read(read_end, 64)):
        pass
    main = threading.main_thread()
    while True:
        main.join(REPEAT_SIGNAL_AFTER_S)
        # Once the main thread has finished, the interpreter is running its exit hooks, and a
        # signal now would cut them short.
        if not main.is_alive():
            return
        os.kill(os.getpid(), signal.SIGTERM)


def stop_children() -> None:
    """Terminate this process's descendants in its own session, then kill those still running.

    Processes in another session are detached on purpose (`llmops up` starts its servers that
    way so that they outlive it) and are left alone.
    """
    session = os.getsid(0)
    children = []
    for child in psutil.Process().children(recursive=True):
        try:
            if os.getsid(child.pid) == session:
                child.terminate()
                children.append(child)
        except (ProcessLookupError, psutil.NoSuchProcess):  # exited meanwhile
            continue
    _, alive = psutil.wait_procs(children, timeout=STOP_GRACE_S)
    for child in alive:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            continue
