"""The installed project registers the ``zoom_videosdk`` connection type like a provider."""

import warnings

from zoom_qos.provider import get_provider_info


def test_provider_info_names_the_hook_and_its_labels():
    (conn,) = get_provider_info()["connection-types"]
    assert conn["connection-type"] == "zoom_videosdk"
    assert conn["hook-class-name"] == "zoom_qos.hooks.ZoomVideoSdkHook"
    assert conn["ui-field-behaviour"]["relabeling"]["login"] == "Video SDK API key"
    assert conn["hook-name"] == "Zoom Video SDK"  # the UI's connection-type list shows this


def test_airflow_discovers_the_connection_type_with_friendly_labels():
    from airflow.providers_manager import ProvidersManager

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        manager = ProvidersManager()
        hook = manager.hooks.get("zoom_videosdk")
        behaviour = manager.field_behaviours.get("zoom_videosdk")
    assert hook is not None and hook.hook_class_name == "zoom_qos.hooks.ZoomVideoSdkHook", (
        "run `pip install -e .` (make test does) so Airflow sees the project's entry point")
    assert hook.hook_name == "Zoom Video SDK"
    assert behaviour["relabeling"]["password"] == "Video SDK API secret"
    assert "port" in behaviour["hidden_fields"]
