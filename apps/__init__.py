"""Reference apps (vision, speech, health). Each app is a subpackage exposing ``APP`` (see ``sdk.apps``)."""
