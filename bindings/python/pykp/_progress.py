"""
_progress.py -- Ctrl-C and a progress bar for long libkp calls.

libkp calls kp_exec_options.progress(user, done, total) from the calling
thread between blocks of rows, at most every 0.25 s and never during the first
0.25 s (kp.h); a nonzero return stops the call with KP_ERR_CANCELLED. For
calls large enough to matter (LONG_CALL_PAIRS pairs or more), pykp passes a
callback that:

- answers Ctrl-C: while the call runs in the main thread, SIGINT only sets a
  flag (a handler of our own, installed for the call when Python's default
  one is in place); the callback returns 1 when it is set, and the call raises
  KeyboardInterrupt as soon as libkp returns (within a second);
- draws a tqdm progress bar (when tqdm is installed and the bar is enabled,
  see set_progress_bar) once a call is expected to take more than
  BAR_AFTER_SECONDS.

Smaller calls go straight to libkp: no callback, no signal handler.
"""
import ctypes
import signal
import struct
import sys
import threading
import time

LONG_CALL_PAIRS = 1 << 27  # ~1e8 pairs: tens of milliseconds and more
BAR_AFTER_SECONDS = 3.0  # a bar for calls expected to take longer

_CALLBACK_T = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
_POINTERS = struct.Struct("@PP")
_state = threading.local()
_bar_mode = ["auto"]


def set_progress_bar(mode):
    """Progress bar for long pykp calls: True (when tqdm is installed), False,
    or "auto" (the default: when tqdm is installed and stderr is a terminal)."""
    if mode not in (True, False, "auto"):
        raise ValueError("pykp: set_progress_bar expects True, False or 'auto', got %r" % (mode,))
    _bar_mode[0] = mode


def _want_bar():
    mode = _bar_mode[0]
    if mode is False:
        return False
    if mode == "auto":
        try:
            if not sys.stderr.isatty():
                return False
        except (AttributeError, ValueError):
            return False
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


class _Call:
    """One long call: the SIGINT flag, the start time, the bar."""

    __slots__ = ("interrupted", "t0", "bar", "want_bar")

    def __init__(self):
        self.interrupted = False
        self.t0 = time.monotonic()
        self.bar = None
        self.want_bar = _want_bar()

    def progress(self, done, total):
        if self.interrupted:
            return 1
        if self.want_bar and done < total:
            if self.bar is None:
                elapsed = time.monotonic() - self.t0
                if done > 0 and elapsed * total / done > BAR_AFTER_SECONDS:
                    from tqdm.auto import tqdm

                    self.bar = tqdm(total=int(total), unit="block", desc="pykp", leave=False)
            if self.bar is not None:
                self.bar.update(int(done) - self.bar.n)
        return 0

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _on_progress(user, done, total):
    # Runs in the calling thread (libkp's contract), with the GIL. Whatever
    # happens, answer libkp: an exception here would be printed and ignored.
    try:
        call = getattr(_state, "call", None)
        return 0 if call is None else call.progress(done, total)
    except BaseException:  # noqa: B036 - nothing may escape a C callback
        return 1


_CALLBACK = _CALLBACK_T(_on_progress)
_CALLBACK_ADDR = ctypes.cast(_CALLBACK, ctypes.c_void_p).value


def run(fn, args, buf, off, pairs):
    """fn(*args) (a kp_plan_exec call whose kp_exec_options.progress field is at
    byte offset off of buf); for long calls with the callback and, in the main
    thread, SIGINT turned into cancellation then KeyboardInterrupt."""
    if pairs < LONG_CALL_PAIRS or getattr(_state, "call", None) is not None:
        return fn(*args)
    call = _Call()
    old = None
    if threading.current_thread() is threading.main_thread():
        try:
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:

                def on_sigint(signum, frame):
                    call.interrupted = True

                old = signal.signal(signal.SIGINT, on_sigint)
        except (ValueError, OSError):  # signals unavailable here (embedded interpreter)
            old = None
    _state.call = call
    _POINTERS.pack_into(buf, off, _CALLBACK_ADDR, 0)
    try:
        st = fn(*args)
    finally:
        _POINTERS.pack_into(buf, off, 0, 0)
        _state.call = None
        if old is not None:
            signal.signal(signal.SIGINT, old)
        call.close()
    if call.interrupted:
        raise KeyboardInterrupt("pykp: reduction interrupted (Ctrl-C)")
    return st
