"""What a server's people see for events other than console lines: one short line each (docs/behaviour.md)."""

from __future__ import annotations

from bot.units import human_size
from bot.wings.frames import Event, Frame, FrameError, parse_backup_completed

# Events whose args are lines to mirror like console output.
MIRRORED = frozenset({Event.CONSOLE_OUTPUT, Event.INSTALL_OUTPUT, Event.TRANSFER_LOGS})

_STATUS_ICONS = {"running": "🟢", "starting": "🟡", "stopping": "🟠", "offline": "🔴"}
_TRANSFER = {
    "pending": "is waiting to start",
    "processing": "is in progress",
    "cancelling": "is being cancelled",
    "cancelled": "was cancelled",
    "failed": "failed",
    "failure": "failed",
    "completed": "completed",
    "success": "completed",
}


def status_line(state: str) -> str:
    """`status` changes as one short line."""
    return f"{_STATUS_ICONS.get(state, '⚪')} Server is now {state}."


def event_line(frame: Frame) -> str | None:
    """A short line for the events people care about, or None for events that are not posted."""
    match frame.known:
        case Event.INSTALL_STARTED:
            return "📦 Installation started."
        case Event.INSTALL_COMPLETED:
            return "📦 Installation finished."
        case Event.BACKUP_COMPLETED:
            try:
                backup = parse_backup_completed(frame.arg)
            except FrameError:
                return "💾 A backup finished."
            if backup.is_successful:
                return f"💾 Backup completed ({human_size(backup.file_size)})."
            return "💾 Backup failed; see the panel for details."
        case Event.BACKUP_RESTORE_COMPLETED:
            return "💾 Backup restore completed."
        case Event.TRANSFER_STATUS:
            return f"🚚 Transfer {_TRANSFER.get(frame.arg, f'status: {frame.arg}')}."
        case Event.DAEMON_MESSAGE:
            return f"ℹ️ {frame.arg}" if frame.arg else None
    return None
