"""The provider-neutral budget engine: pure values and rules, no I/O, no clock reads."""

from quotaguard.engine.amounts import MICRO, Unit, as_amount, from_micro, to_micro
from quotaguard.engine.forecast import Forecast, forecast, forecast_basis
from quotaguard.engine.model import (
    Alert,
    Budget,
    BudgetState,
    Charge,
    Decision,
    Estimate,
    Reservation,
    ReservationState,
    Violation,
)
from quotaguard.engine.rules import (
    RULE_REMAINING,
    RULE_WINDOW_CLOSED,
    Usage,
    check_charges,
    evaluate,
    state_of,
    used_micro,
)
from quotaguard.engine.windows import (
    CalendarMonth,
    FixedWindow,
    NoWindow,
    RollingDays,
    Window,
    window_from_dict,
    window_to_dict,
)

__all__ = [
    "MICRO",
    "RULE_REMAINING",
    "RULE_WINDOW_CLOSED",
    "Alert",
    "Budget",
    "BudgetState",
    "CalendarMonth",
    "Charge",
    "Decision",
    "Estimate",
    "FixedWindow",
    "Forecast",
    "NoWindow",
    "Reservation",
    "ReservationState",
    "RollingDays",
    "Unit",
    "Usage",
    "Violation",
    "Window",
    "as_amount",
    "check_charges",
    "evaluate",
    "forecast",
    "forecast_basis",
    "from_micro",
    "state_of",
    "to_micro",
    "used_micro",
    "window_from_dict",
    "window_to_dict",
]
