"""Stop work whose client has gone: `with cancelled_on_disconnect(receive) as watch:` cancels the
current task when the client disconnects, and the block ends quietly (`watch.gone` is then True).

One watcher task per request, and no task group: the work runs in the request's own task, so
its upstream calls (the LLM, the peers) are cancelled with it.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from starlette.types import Receive


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class cancelled_on_disconnect:  # noqa: N801 - used like a function, as contextlib's are
    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.gone = False

    def __enter__(self) -> cancelled_on_disconnect:
        task = asyncio.current_task()
        assert task is not None, "must run in a task"
        self._task = task
        self._watcher = asyncio.create_task(self._watch())
        return self

    async def _watch(self) -> None:
        await _wait_for_disconnect(self._receive)
        self.gone = True
        self._task.cancel()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> bool:
        self._watcher.cancel()
        if self.gone and kind is asyncio.CancelledError:
            self._task.uncancel()  # our own cancellation, not a shutdown's: it ends here
            return True
        return False
