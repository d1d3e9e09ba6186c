"""How often does an exception raised by a signal handler fail to stop a probe training?

    .venv/bin/python -m bench.quit_signal [--tries 40]

billiard's SIGQUIT handler in a pool child raises SystemExit; this sends SIGUSR1 with the same
kind of handler at a random moment of each `workers.train.train` call and counts the trainings
that went on to their end anyway (the exception was raised inside a weakref callback or a
`__del__`, printed as "Exception ignored" and dropped). Why workers/shutdown.py exits with
`os._exit` instead.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import threading
from collections import Counter
from types import FrameType


class Raised(SystemExit):
    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tries", type=int, default=40)
    args = parser.parse_args()

    from bench.soak import small_run
    from service.schemas.run import RunSpec
    from tests.fashion import sample
    from workers.data import from_sample
    from workers.train import train

    def handler(_signum: int, frame: FrameType | None) -> None:
        where = f"{frame.f_code.co_name}" if frame else "?"
        raise Raised(where)

    signal.signal(signal.SIGUSR1, handler)
    x, y = sample(n=256)
    data = from_sample(x / 255.0, y, cap=256)
    run = RunSpec.model_validate(small_run("unused"))
    train(run, data, 20, 0, eval_every=10)  # traced once: the tries time training, not imports
    stopped: Counter[str] = Counter()
    swallowed = other = 0
    for i in range(args.tries):
        timer = threading.Timer(random.uniform(0.05, 1.5), os.kill, (os.getpid(), signal.SIGUSR1))
        timer.start()
        try:
            train(run, data, 400, i, eval_every=20)
            timer.join()
            swallowed += 1  # the signal came (joined) and the training still ran to its end
        except Raised as exc:
            stopped[str(exc)] += 1
        except Exception:  # the interrupted TensorFlow call may fail in its own way
            other += 1
        timer.join()
    print(f"{swallowed} of {args.tries} signals did not stop the training; {other} broke it")
    print(f"(otherwise stopped in: {dict(stopped.most_common(5))})")


if __name__ == "__main__":
    main()
