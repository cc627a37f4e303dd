"""On-call: schedules (who is asked first, by time) and silences (who is not paged at all).

The pure cores are :mod:`alertengine.oncall.schedule` and :mod:`alertengine.oncall.silences`;
:mod:`alertengine.oncall.registry` keeps both per tenant in the state store, ledgered.
"""

from alertengine.oncall.schedule import (
    Layer,
    Override,
    Schedule,
    ScheduleError,
    Shift,
    order,
    schedule_from_dict,
    schedule_to_dict,
)

__all__ = [
    "Layer",
    "Override",
    "Schedule",
    "ScheduleError",
    "Shift",
    "order",
    "schedule_from_dict",
    "schedule_to_dict",
]
