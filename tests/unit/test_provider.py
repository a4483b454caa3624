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


def test_the_version_is_the_installed_distributions():
    from importlib import metadata

    assert get_provider_info()["versions"] == [metadata.version("zoom-videosdk-qos")]
    assert get_provider_info()["package-name"] == "zoom-videosdk-qos"


def test_a_source_tree_that_was_never_installed_reports_an_unknown_version(monkeypatch):
    from importlib import metadata

    from zoom_qos import provider

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(provider.metadata, "version", not_installed)
    assert get_provider_info()["versions"] == ["0+unknown"]


def test_the_wheel_lists_every_package_of_the_tree_and_ships_the_dags():
    """The package list is found, not kept by hand (setup.py): every package of the tree, and
    dags/ as zoom_qos.example_dags; a subpackage the finder missed would be missing from the wheel,
    not from this checkout."""
    import importlib.util
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"": "plugins", "zoom_qos.example_dags": "dags"}
    assert "packages" not in setuptools  # found by setup.py
    spec = importlib.util.spec_from_file_location("zoom_qos_setup", root / "setup.py")
    assert spec is not None and spec.loader is not None
    setup_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup_module)
    tree = {".".join(init.parent.relative_to(root / "plugins").parts)
            for init in (root / "plugins" / "zoom_qos").rglob("__init__.py")}
    assert {"zoom_qos.core", "zoom_qos.pipeline", "zoom_qos.alerts"} <= tree
    assert set(setup_module.packages()) == tree | {"zoom_qos.example_dags"}
    assert (root / "dags" / "__init__.py").is_file()


def test_the_webhook_secret_token_is_a_secret_in_the_form_and_to_airflows_masker():
    """Like the API secret (the password field): a password field in the connection form, and a
    name Airflow's API and logs hide (``redact`` of the extras), so it never shows in clear."""
    from airflow._shared.secrets_masker import redact  # what the API redacts connections with
    from airflow.providers_manager import ProvidersManager

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        widget = ProvidersManager().connection_form_widgets["extra__zoom_videosdk__webhook_secret_token"]
    assert widget.is_sensitive and widget.field["schema"]["format"] == "password"
    extra = {"webhook_secret_token": "tok-9f1c2b7e", "read_user_grades": True}
    assert redact(extra) == {"webhook_secret_token": "***", "read_user_grades": True}
