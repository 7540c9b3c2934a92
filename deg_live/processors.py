"""Processors: in-process closed-loop actions run by the pipeline on every processed frame (DLC-live style).

A :class:`Processor` sees each frame's :class:`deg_live.pipeline.FrameResult` (probabilities, decisions, the
onset/offset events decided at that frame) in the pipeline's main loop, right after the events were published
and before the state message. It is the lowest-latency place for a closed-loop action, so it must be quick
(well under a millisecond: start a thread for anything slow). Processors from another process are the
``events/<camera>`` subscribers instead (``deg-live listen``).

Built-in processors (``deg-live run --processor "NAME key=value ..."``):

- ``print``: prints each onset/offset with its latency.
- ``serial``: drives a serial port's DTR or RTS line as a TTL signal for an Arduino-class board:
  ``port=/dev/ttyUSB0 line=dtr|rts behaviour=NAME mode=pulse|level pulse_ms=10``. ``pulse``: a pulse of
  ``pulse_ms`` at each onset of ``behaviour`` (any behaviour but background when not given); ``level``: the line
  is high while the behaviour is on. Needs pyserial (``pip install pyserial``, or the ``trigger`` extra);
  ``port`` may be any pyserial URL (``loop://`` for a dry run).

Your own: subclass :class:`Processor` and pass an instance to :class:`deg_live.pipeline.LivePipeline`, or name it
``package.module:ClassName`` on the command line (keyword options as ``key=value``: typed by the class's own
``Settings`` dataclass when it has one, else given as strings).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import logging
import shlex
import sys
import threading
import time
import typing
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TextIO

from camera_adapters.errors import UserFacingError
from camera_adapters.plugins import Availability, Registry
from camera_adapters.settings import ConfigError, load_settings, parse_overrides

if TYPE_CHECKING:
    from deg_live.pipeline import FrameResult

logger = logging.getLogger(__name__)

SERIAL_LINES = ("dtr", "rts")


class ProcessorError(UserFacingError, ValueError):
    """A processor that cannot be created: unknown name, bad option, missing optional dependency."""


class Processor(ABC):
    """Base class: one closed-loop action, called once per processed frame in the pipeline's main loop.

    A processor is a plug-in (:mod:`camera_adapters.plugins`): a ``name``, an :meth:`availability` check and a
    ``Settings`` dataclass whose fields are the ``key=value`` options of ``--processor`` (typed, unknown keys
    refused); the constructor takes the same names as keyword arguments.

    Lifecycle: construct, :meth:`process` per frame, :meth:`close` (idempotent; context manager).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    @dataclass
    class Settings:
        """No options."""

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """``(usable, why)``: whether this processor can run here (optional dependencies installed)."""
        return True, "built in"

    @abstractmethod
    def process(self, result: FrameResult) -> None:
        """React to one processed frame (``result.events`` holds the onsets/offsets decided at this frame)."""

    def close(self) -> None:  # noqa: B027 - optional hook, most processors hold nothing
        """Release what the processor holds (ports, files). Safe to call twice."""

    def __enter__(self) -> Processor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_processor(cls: type[Processor]) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Processor)):
        raise TypeError(f"{cls!r} is not a subclass of deg_live.processors.Processor")
    if not dataclasses.is_dataclass(cls.Settings):
        raise TypeError(f"{cls.__name__}.Settings must be a dataclass")


#: The built-in processors by name (the plug-in pattern of :mod:`camera_adapters.plugins`).
PROCESSORS: Registry[type[Processor]] = Registry(
    "processor", ProcessorError, hint="or package.module:ClassName", check=_check_processor
)


def register_processor(cls: type[Processor]) -> type[Processor]:
    """Class decorator: make ``cls`` available by its ``name``."""
    PROCESSORS.add(cls)
    return cls


def processor_names() -> list[str]:
    """Names of the registered processors."""
    return PROCESSORS.names()


def available_processors() -> list[Availability]:
    """Whether each registered processor can run here, and why."""
    return PROCESSORS.available()


def _typed_options(settings_cls: type, options: dict[str, str]) -> dict[str, Any]:
    """``key=value`` texts as the values :func:`load_settings` checks.

    Text fields stay as typed (a port ``COM3`` or a behaviour ``1`` is never turned into a number), booleans also
    take 1/0, the rest are read as YAML scalars (``20``, ``true``).
    """
    hints = typing.get_type_hints(settings_cls)
    data: dict[str, Any] = {}
    for key, text in options.items():
        hint = hints.get(key)
        if hint is str or hint == (str | None):
            data[key] = text
        elif hint is bool and text in ("1", "0"):
            data[key] = text == "1"
        else:
            data.update(parse_overrides([f"{key}={text}"]))
    return data


def create_processor(spec: str) -> Processor:
    """Build a processor from a command-line spec: ``"NAME key=value ..."`` or ``"pkg.module:Class key=value"``.

    The options are checked against the processor's ``Settings`` dataclass (values typed like YAML scalars:
    ``pulse_ms=20`` is a number, ``invert=true`` a boolean); a ``package.module:Class`` processor without its
    own ``Settings`` gets them as strings.

    Raises:
        ProcessorError: unknown name (lists the known ones), a malformed or unknown option, a wrong type, or the
            class refused them.
    """
    words = shlex.split(spec)
    if not words:
        raise ProcessorError("empty --processor spec; give a name, e.g. --processor print")
    name, options = words[0], {}
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise ProcessorError(f"processor {name!r}: option {word!r} must be key=value")
        options[key.replace("-", "_")] = value
    if ":" in name:
        module_name, _, class_name = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as err:
            raise ProcessorError(f"processor {name!r}: cannot import it ({err})") from None
        if not (isinstance(cls, type) and issubclass(cls, Processor)):
            raise ProcessorError(f"processor {name!r} is not a subclass of deg_live.processors.Processor")
    else:
        cls = PROCESSORS.get(name)
    if ":" not in name or cls.Settings is not Processor.Settings:
        fields = dataclasses.fields(cls.Settings)
        missing = [
            f.name
            for f in fields
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in options
        ]
        if missing:
            known = " ".join(f"{f.name}=..." for f in fields)
            raise ProcessorError(f"processor {name!r} needs {', '.join(missing)}= (its options: {known})")
        try:
            settings = load_settings(cls.Settings, _typed_options(cls.Settings, options), source=f"processor {name!r}")
        except ConfigError as err:
            raise ProcessorError(str(err)) from None
        options = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
    try:
        return cls(**options)
    except TypeError as err:
        raise ProcessorError(f"processor {name!r}: {err}") from None


@register_processor
class PrintProcessor(Processor):
    """Prints each onset/offset: camera, behaviour, kind, frame, probability and latency."""

    name = "print"
    description = "print each onset/offset with its latency"

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream if stream is not None else sys.stdout

    def process(self, result: FrameResult) -> None:
        """Print the events decided at this frame."""
        for ev in result.events:
            self.stream.write(
                f"{ev.camera_id} {ev.behaviour} {ev.kind} frame {ev.frame_index} "
                f"p={ev.probability if ev.probability is not None else float('nan'):.2f} "
                f"latency {ev.latency_ms:.1f} ms\n"
            )
        if result.events:
            self.stream.flush()


class SerialTrigger:
    """A serial port's DTR or RTS line used as a TTL output (pyserial).

    Args:
        port: device (``/dev/ttyUSB0``, ``COM3``) or any pyserial URL (``loop://`` for a dry run).
        line: ``"dtr"`` or ``"rts"``.
        pulse_ms: length of :meth:`pulse`.
        invert: idle high, active low.

    Raises:
        ProcessorError: pyserial missing (with the install command), unknown line, or the port cannot be opened.
    """

    def __init__(self, port: str, line: str = "dtr", pulse_ms: float = 10.0, invert: bool = False):
        line = line.lower()
        if line not in SERIAL_LINES:
            raise ProcessorError(f"serial line {line!r}: choose one of {', '.join(SERIAL_LINES)}")
        try:
            import serial  # optional dependency
        except ImportError:
            raise ProcessorError(
                "the serial trigger needs pyserial: pip install pyserial (or pip install 'deg-live[trigger]')"
            ) from None
        try:
            self._port = serial.serial_for_url(port, do_not_open=True)
            # Set the idle level before opening so the line does not glitch.
            setattr(self._port, line, bool(invert))
            self._port.open()
        except (serial.SerialException, OSError, ValueError) as err:
            raise ProcessorError(f"cannot open serial port {port!r}: {err}") from None
        self.port_name = port
        self.line = line
        self.pulse_ms = float(pulse_ms)
        self.invert = bool(invert)
        self.pulses = 0
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._closed = False

    @property
    def level(self) -> bool:
        """The line's logical level now (True = active)."""
        return bool(getattr(self._port, self.line)) != self.invert

    def set(self, active: bool) -> None:
        """Drive the line active (True) or idle (False)."""
        with self._lock:
            if not self._closed:
                setattr(self._port, self.line, bool(active) != self.invert)

    def pulse(self) -> float:
        """Raise the line now and lower it after ``pulse_ms`` (a timer thread; returns at once).

        Returns:
            ``time.time()`` when the line went active (for latency reports).
        """
        if self._timer is not None:
            self._timer.cancel()
        self.set(True)
        when = time.time()
        self.pulses += 1
        self._timer = threading.Timer(self.pulse_ms / 1000.0, self.set, args=(False,))
        self._timer.daemon = True
        self._timer.start()
        return when

    def close(self) -> None:
        """Set the line idle and close the port (idempotent)."""
        if self._closed:
            return
        if self._timer is not None:
            self._timer.cancel()
        self.set(False)
        with self._lock:
            self._closed = True
            self._port.close()

    def __enter__(self) -> SerialTrigger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@register_processor
class SerialProcessor(Processor):
    """Drives a serial line from the decisions: a pulse per onset, or the level of a behaviour.

    Args:
        port: serial device or pyserial URL.
        line: ``dtr`` or ``rts``.
        behaviour: the behaviour to react to (default: any behaviour except ``background``).
        mode: ``pulse`` (a pulse per onset) or ``level`` (high while the behaviour is on).
        pulse_ms: pulse length in ms.
    """

    name = "serial"
    description = "drive a serial port's DTR or RTS line (TTL) from onsets or a behaviour's level"

    @dataclass
    class Settings:
        """The ``--processor serial`` options (see the class docstring)."""

        port: str
        line: str = "dtr"
        behaviour: str | None = None
        mode: Literal["pulse", "level"] = "pulse"
        pulse_ms: float = 10.0
        invert: bool = False

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """Usable when pyserial is installed (whether the port exists is known only when it opens)."""
        if importlib.util.find_spec("serial") is None:
            return False, "pyserial is not installed: pip install pyserial (or pip install 'deg-live[trigger]')"
        return True, "pyserial installed"

    def __init__(
        self,
        port: str,
        line: str = "dtr",
        behaviour: str | None = None,
        mode: str = "pulse",
        pulse_ms: Any = 10.0,
        invert: Any = False,
    ):
        if mode not in ("pulse", "level"):
            raise ProcessorError(f"serial processor: mode {mode!r}, choose pulse or level")
        try:
            pulse = float(pulse_ms)
        except ValueError:
            raise ProcessorError(f"serial processor: pulse_ms must be a number, got {pulse_ms!r}") from None
        if not pulse > 0 or pulse > 60_000:
            raise ProcessorError(f"serial processor: pulse_ms must be between 0 and 60000 ms, got {pulse_ms!r}")
        inverted = invert if isinstance(invert, bool) else str(invert).lower() in ("1", "true", "yes")
        self.behaviour = behaviour
        self.mode = mode
        self.trigger = SerialTrigger(port, line, pulse, inverted)

    def _wanted(self, name: str) -> bool:
        return name == self.behaviour if self.behaviour else name != "background"

    def process(self, result: FrameResult) -> None:
        """Pulse on onsets, or follow the behaviour's decision."""
        if self.mode == "pulse":
            if any(ev.kind == "onset" and self._wanted(ev.behaviour) for ev in result.events):
                self.trigger.pulse()
            return
        active = any(d and self._wanted(b) for b, d in zip(result.behaviours, result.decisions))
        if active != self.trigger.level:
            self.trigger.set(active)

    def close(self) -> None:
        """Idle the line and close the port."""
        self.trigger.close()
