"""Fleet side: watch, record, report and simulate devices that publish Ember telemetry over MQTT."""

from sdk.fleet.broker import LocalBroker
from sdk.fleet.record import HistoryDB, Recorder, load_history, record
from sdk.fleet.report import write_report
from sdk.fleet.simulate import simulate
from sdk.fleet.state import DeviceView, FleetState

__all__ = ["DeviceView", "FleetState", "HistoryDB", "LocalBroker", "Recorder", "load_history", "record", "simulate",
           "write_report"]
