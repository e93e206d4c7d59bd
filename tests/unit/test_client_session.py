"""The API client's HTTP session reads the environment once, for the API's host: the
proxy and CA settings requests would read on every call still apply."""

from __future__ import annotations

from shared.webscraper.client import _session_for

API = "https://api.webscraper.io/api/v1/"


def test_the_proxy_of_the_environment_is_used(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    session = _session_for(API)
    assert session.proxies["https"] == "http://proxy.example:3128"
    assert session.trust_env is False  # not read again on every call


def test_no_proxy_for_the_apis_host_is_respected(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", ".webscraper.io")
    assert "https" not in _session_for(API).proxies


def test_a_ca_bundle_of_the_environment_is_used(monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/company.pem")
    assert _session_for(API).verify == "/etc/ssl/certs/company.pem"
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    assert _session_for(API).verify is True
