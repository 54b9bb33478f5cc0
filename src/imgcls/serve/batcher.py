"""Dynamic batching: concurrent requests' images are grouped into one forward pass.

Requests say they are coming (``coming()``, while their image decodes), then put the decoded image
on a bounded queue (full: ``QueueFull``, which the app answers with 503 and Retry-After) and wait
for their row of the result. One task takes the first waiting image, then — while other requests
are still decoding — whatever else arrives within ``max_wait_ms``, up to ``max_batch``, and runs the
forward pass in a thread of its own, off the event loop. Under load the batches fill and throughput
approaches the model's batch throughput; a request alone is computed at once, without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch


class QueueFull(Exception):
    """The queue of images waiting for the model is full."""


class Batcher:
    def __init__(
        self, infer: Callable[[torch.Tensor], np.ndarray], max_batch: int = 32, max_wait_ms: float = 5.0,
        queue_size: int = 256, on_batch: Callable[[int, float], None] | None = None,
    ) -> None:  # fmt: skip
        self.infer, self.max_batch, self.max_wait = infer, max(1, max_batch), max_wait_ms / 1000
        self.queue: asyncio.Queue[tuple[torch.Tensor, asyncio.Future]] = asyncio.Queue(maxsize=queue_size)
        self.model_thread = ThreadPoolExecutor(1, thread_name_prefix="imgcls-model")
        self.on_batch = on_batch or (lambda size, seconds: None)
        self.task: asyncio.Task | None = None
        self.decoding = 0  # requests on their way to the queue

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.model_thread.shutdown(wait=False, cancel_futures=True)

    @property
    def depth(self) -> int:
        return self.queue.qsize()

    @contextlib.contextmanager
    def coming(self):  # type: ignore[no-untyped-def]
        """Around a request's decoding: the batch being gathered waits for it."""
        self.decoding += 1
        try:
            yield
        finally:
            self.decoding -= 1

    def submit(self, pixels: torch.Tensor) -> asyncio.Future:
        """Queue the image; the future gets its probabilities, from whichever batch it joins."""
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait((pixels, future))
        except asyncio.QueueFull:
            raise QueueFull from None
        return future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            deadline = loop.time() + self.max_wait
            while len(items) < self.max_batch:
                try:
                    items.append(self.queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                remaining = deadline - loop.time()
                if remaining <= 0 or not self.decoding:  # nobody else is on the way: no reason to wait
                    break
                try:
                    items.append(await asyncio.wait_for(self.queue.get(), remaining))
                except TimeoutError:
                    break
            items = [(x, f) for x, f in items if not f.done()]  # a request that timed out is not computed
            if not items:
                continue
            start = time.perf_counter()
            try:
                probs = await loop.run_in_executor(
                    self.model_thread, self.infer, torch.stack([x for x, _ in items])
                )
            except Exception as e:  # the model failed: every waiting request gets the error
                for _, f in items:
                    if not f.done():
                        f.set_exception(e)
                continue
            self.on_batch(len(items), time.perf_counter() - start)
            for (_, f), row in zip(items, probs):
                if not f.done():
                    f.set_result(row)
