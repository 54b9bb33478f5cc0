"""SIGTERM / SIGINT during training: the first finishes the current step, saves and exits with
instructions to resume; a second one exits at once (checkpoints are atomic, so nothing is lost
but the steps since the last save)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType, TracebackType


class GracefulStop:
    def __init__(self) -> None:
        self.requested: str | None = None
        self._old: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.requested:
            print(
                f"\nimgcls: second {name}: exiting now (the last checkpoint is intact)",
                file=sys.stderr,
                flush=True,
            )
            os._exit(130)
        self.requested = name
        print(
            f"\nimgcls: {name}: finishing this step and saving; send it again to exit at once",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGTERM, signal.SIGINT):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)  # type: ignore[arg-type]
