"""MagentoClient over real HTTP against a loopback server replaying the recordings."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from magsync.magento import codec
from magsync.magento.client import (
    SESSION_ATTEMPTS,
    MagentoClient,
    store_urls,
    summarize_args,
)
from magsync.magento.errors import (
    MagentoAuthError,
    MagentoCallFault,
    MagentoError,
    MagentoFatalError,
    MagentoRetriableError,
    MagentoSessionExpired,
)
from tests.magento.replay_server import (
    RECORDED_KEY,
    WIRE,
    WSDL_DIR,
    ReplayServer,
    recorded_request,
    recording,
)

WSDLS = {
    "magento_ce19.wsdl": "urn:Magento",
    "magento_legacy.wsdl": "urn:Magento",
    "openmage.wsdl": "urn:OpenMage",
}


MULTICALL_3 = [
    ("customer.info", [1]),
    ("customer_address.list", [1]),
    ("customer_group.list", None),
]


@pytest.fixture
def store() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


def client_for(store: ReplayServer, **options: Any) -> MagentoClient:
    settings: dict[str, Any] = {"timeout": 2.0, "retries": 2, "backoff_base": 0.001}
    settings.update(options)
    api_key = settings.pop("api_key", store.state.api_key)
    url = settings.pop("url", store.url)
    return MagentoClient(url, "etl", api_key, **settings)


def masked_c14n(body: bytes) -> bytes:
    """C14N of an envelope with its sessionId text replaced."""
    root = codec.parse_xml(body)
    for element in root.iter("sessionId"):
        element.text = "SESSION"
    return etree.tostring(root, method="c14n")


# --- WSDL variants, endpoint, namespace -----------------------------------------------


@pytest.mark.parametrize(("wsdl", "namespace"), WSDLS.items())
def test_session_round_trip_on_every_wsdl_variant(wsdl: str, namespace: str) -> None:
    with ReplayServer(wsdl_file=wsdl, namespace=namespace) as store:
        with client_for(store) as client:
            assert client.namespace == namespace
            groups = client.call("customer_group.list")
            results = client.multi_call(MULTICALL_3)
        assert [g["customer_group_id"] for g in groups] == list(range(7))
        assert results[0]["firstname"] == "Zoë" and results[2] == groups
        assert [c.operation for c in store.state.posts()] == [
            "login",
            "call",
            "multiCall",
            "endSession",
        ]
        assert all(c.path == "/api/soap/" for c in store.state.posts())  # not soap:address
        calls = codec.body_element(codec.parse_xml(store.state.posts("multiCall")[0].body))[1]
        expected = "SOAP-ENC:Array" if wsdl == "magento_legacy.wsdl" else "ns1:FixedArray"
        assert calls.get(f"{{{codec.XSI_NS}}}type") == expected
        assert store.state.misses == [] and store.state.sessions == set()


def test_index_php_store_url(store: ReplayServer) -> None:
    with client_for(store, url=store.url + "index.php/") as client:
        client.call("customer_group.list")
    assert {c.path for c in store.state.captured} == {
        "/index.php/api/soap/?wsdl",
        "/index.php/api/soap/",
    }


@pytest.mark.parametrize(
    ("url", "endpoint", "wsdl"),
    [
        (
            "https://store.example/",
            "https://store.example/api/soap/",
            "https://store.example/api/soap/?wsdl",
        ),
        (
            "https://store.example",
            "https://store.example/api/soap/",
            "https://store.example/api/soap/?wsdl",
        ),
        (
            "https://s.example/shop/index.php",
            "https://s.example/shop/index.php/api/soap/",
            "https://s.example/shop/index.php/api/soap/?wsdl",
        ),
        (
            "https://s.example/api/soap/",
            "https://s.example/api/soap/",
            "https://s.example/api/soap/?wsdl",
        ),
    ],
)
def test_store_urls(url: str, endpoint: str, wsdl: str) -> None:
    assert store_urls(url) == (endpoint, wsdl)


@pytest.mark.parametrize(
    "url", ["ftp://s.example/", "https://u:p@s.example/", "https://s.example/?a=1", "s.example"]
)
def test_bad_store_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError) as raised:
        MagentoClient(url, "etl", "secret-key")
    assert "p@" not in str(raised.value) and "secret-key" not in str(raised.value)


def test_tls_verification_cannot_be_switched_off(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="CA bundle"):
        MagentoClient("https://s.example/", "etl", "k", verify=False)
    with pytest.raises(ValueError, match="not found"):
        MagentoClient("https://s.example/", "etl", "k", verify=str(tmp_path / "missing.pem"))
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    assert MagentoClient("https://s.example/", "etl", "k", verify=str(bundle))._http.verify == str(
        bundle
    )


def test_basic_auth() -> None:
    with ReplayServer(basic_auth=("proxy", "pw")) as store:
        with client_for(store, basic_auth=("proxy", "pw")) as client:
            assert len(client.call("customer_group.list")) == 7
        with pytest.raises(MagentoAuthError, match="HTTP 401: check the basic-auth"):
            client_for(store).login()


# --- request shapes ---------------------------------------------------------------------


def _positional(args: Any) -> list[Any] | None:
    return None if args is None else args if isinstance(args, list) else [args]


def drive(client: MagentoClient, name: str) -> Any:
    """Make the client send the call a recording holds (args always positional)."""
    operation, parts = recorded_request(name)
    if operation == "login":
        return client.login()
    if operation == "endSession":
        client.login()
        return client.end_session()
    if operation == "call":
        return client.call(parts["resourcePath"], _positional(parts["args"]))
    calls = [(c[0], _positional(c[1]) if len(c) > 1 else None) for c in parts["calls"]]
    return client.multi_call(calls, break_on_fault=parts["options"] == {"break": 1})


def _is_positional(name: str) -> bool:
    """True when PHP sent args as an array (or nil), the only form magsync sends."""
    operation, parts = recorded_request(name)
    if operation == "call":
        return parts["args"] is None or isinstance(parts["args"], list)
    if operation == "multiCall":
        return all(len(c) == 1 or isinstance(c[1], list) for c in parts["calls"])
    return True


V1 = sorted(p.name.removesuffix(".request.xml") for p in WIRE.glob("v1_*.request.xml"))
POSITIONAL = [name for name in V1 if _is_positional(name)]
SCALAR_ARGS = [
    name for name in V1 if not _is_positional(name) and name != "v1_customer_list_bare_map"
]


def test_recordings_split_as_expected() -> None:
    assert len(POSITIONAL) == 37 and len(SCALAR_ARGS) == 11


@pytest.mark.parametrize("name", POSITIONAL)
def test_request_is_c14n_equal_to_recording(store: ReplayServer, name: str) -> None:
    operation, parts = recorded_request(name)
    client = client_for(store, api_key=parts.get("apiKey", RECORDED_KEY))
    with contextlib.suppress(MagentoError):  # fault recordings: only the request matters here
        drive(client, name)
    sent = store.state.posts(operation)[-1]
    assert masked_c14n(sent.body) == masked_c14n(recording(name, "request"))
    assert sent.headers["SOAPAction"] == '"urn:Action"'
    assert sent.headers["Content-Type"] == "text/xml; charset=utf-8"


@pytest.mark.parametrize("name", SCALAR_ARGS)
def test_scalar_arg_recordings_get_the_recorded_answer(store: ReplayServer, name: str) -> None:
    if name == "v1_acl_denied":
        store.state.denied.add("customer_address.list")
    try:
        result: Any = drive(client_for(store), name)
    except MagentoCallFault as fault:
        result = codec.SoapFaultInfo(fault.code, fault.fault_message)
    except MagentoFatalError as error:
        result = codec.SoapFaultInfo(error.code or "", "")
    root = codec.parse_xml(recording(name, "response"))
    fault = codec.parse_fault(root)
    if fault is not None:
        assert result.code == fault.code
        return
    expected = codec.decode(codec.body_element(root)[0])
    if isinstance(result, list):  # multiCall: inline faults come back as MagentoCallFault
        expected = [
            MagentoCallFault(
                f.code, f.message, resource=result[i].resource, args_summary=result[i].args_summary
            )
            if (f := codec.inline_fault(value))
            else value
            for i, value in enumerate(expected)
        ]
    assert result == expected
    assert store.state.misses == []


# --- results and faults -----------------------------------------------------------------


def test_results_are_plain_python(store: ReplayServer) -> None:
    with client_for(store) as client:
        customers = client.call("customer.list")
        window = client.call("customer.list", [{"customer_id": {"from": 10, "to": 14}}])
        created = client.call(
            "customer.create",
            [
                {
                    "email": "to.delete.6b094034b202f@example.com",
                    "firstname": "Ännchen",
                    "lastname": "Delete-Me",
                    "website_id": 1,
                    "store_id": 1,
                    "group_id": 2,
                    "password": "Passw0rd123456",
                }
            ],
        )
        updated = client.call(
            "customer.update", ["221", {"lastname": "Updated", "taxvat": "ATU12345678"}]
        )
    assert len(customers) == 200 and customers[0]["lastname"] == "Łukasiewicz"
    assert [c["customer_id"] for c in window] == [10, 11, 12, 13, 14]
    assert (created, updated) == ("221", True)


def test_multicall_inline_faults(store: ReplayServer) -> None:
    calls = [("customer.info", [5]), ("customer.info", [999999]), ("customer_group.list", None)]
    with client_for(store) as client:
        results = client.multi_call(calls)
        stopped = client.multi_call(calls, break_on_fault=True)
    assert results[0]["customer_id"] == 5 and len(results[2]) == 7
    assert results[1] == MagentoCallFault(
        102, "Customer not exists.", resource="customer.info", args_summary="999999"
    )
    assert stopped[1] == results[1] and len(stopped) == 2
    assert client.multi_call([]) == []
    assert str(results[1]) == "customer.info(999999) failed with fault 102: Customer not exists."


@pytest.mark.parametrize(
    ("resource", "args", "code", "message"),
    [
        ("customer.info", [999999], 102, "Customer not exists."),
        ("customer_address.list", [999999], 101, "Customer not exists."),
        ("customer.list", [{"no_such_attr": "x"}], 101, "Invalid attribute name: no_such_attr"),
        (
            "customer.create",
            [{"firstname": "No", "lastname": "Email", "website_id": 1}],
            100,
            "Customer email is required",
        ),
        ("customer.delete", [999999], 102, "Customer not exists."),
        ("customer_address.info", [999999], 102, "Address not exists."),
    ],
)
def test_call_faults(
    store: ReplayServer, resource: str, args: list[Any], code: int, message: str
) -> None:
    with client_for(store) as client, pytest.raises(MagentoCallFault) as raised:
        client.call(resource, args)
    assert (raised.value.code, raised.value.fault_message, raised.value.resource) == (
        code,
        message,
        resource,
    )
    assert len(store.state.posts("call")) == 1


def test_multiline_fault_message_is_one_line(store: ReplayServer) -> None:
    with client_for(store) as client, pytest.raises(MagentoCallFault) as raised:
        client.call("customer_address.create", ["221", {"firstname": "A"}])
    assert raised.value.code == 100 and "\n" not in str(raised.value)
    assert str(raised.value).startswith(
        "customer_address.create('221', {firstname}) failed with fault 100"
    )


def test_fatal_faults(store: ReplayServer) -> None:
    store.state.denied.add("customer_address.list")
    with client_for(store) as client:
        with pytest.raises(MagentoFatalError) as invalid:
            client.call("customer.nosuchmethod")
        with pytest.raises(MagentoFatalError) as denied:
            client.call("customer_address.list", [2])
        store.state.inject("respond:v1_customer_list_bare_map", "call")
        with pytest.raises(MagentoFatalError) as server_fault:
            client.call("customer.list", [{"customer_id": {"from": 1, "to": 3}}])
    assert (
        str(invalid.value)
        == "customer.nosuchmethod: invalid API path: the store has no such resource "
        "(fault 3 Invalid api path.)"
    )
    assert denied.value.code == 2 and str(denied.value).startswith(
        "customer_address.list: access denied"
    )
    assert server_fault.value.code == "SOAP-ENV:Server" and "Unknown named parameter" in str(
        server_fault.value
    )
    assert len(store.state.posts("call")) == 3  # none retried
    for error in (invalid.value, denied.value, server_fault.value):
        assert "\n" not in str(error) and not isinstance(error, MagentoRetriableError)


def test_fault_sent_as_http_500_is_still_a_fault(store: ReplayServer) -> None:
    # PHP's SoapServer sends faults with HTTP 500; the recorded store used 200.
    with client_for(store) as client:
        store.state.inject("respond500:v1_customer_info_missing", "call")
        with pytest.raises(MagentoCallFault, match="fault 102"):
            client.call("customer.info", [5])
    assert len(store.state.posts("call")) == 1


def test_bad_api_key() -> None:
    with (
        ReplayServer() as store,
        pytest.raises(MagentoAuthError) as raised,
        client_for(store, api_key="wrong-key-123"),
    ):
        pass
    assert str(raised.value) == (
        "login refused for API user 'etl' (fault 2 Access denied.): check the API user and key"
    )
    assert len(store.state.posts("login")) == 1


def test_args_must_be_positional(store: ReplayServer) -> None:
    client = client_for(store)
    with pytest.raises(TypeError, match="positional"):
        client.call("customer.list", {"customer_id": {"from": 1, "to": 3}})  # type: ignore[arg-type]
    assert store.state.posts() == []


def test_summarize_args_hides_values_of_dicts() -> None:
    assert summarize_args([5, "221", {"email": "x@y", "password": "p"}, [1, 2]]) == (
        "5, '221', {email, password}, [2 items]"
    )


# --- retries, timeouts, sessions ----------------------------------------------------------


@pytest.mark.parametrize("failure", ["http500", "drop", "truncate", "short", "slow"])
def test_reads_are_retried(store: ReplayServer, failure: str) -> None:
    store.state.slow_seconds = 0.8
    with client_for(store, timeout=0.4) as client:
        store.state.inject(failure, "call")
        assert len(client.call("customer_group.list")) == 7
    assert len(store.state.posts("call")) == 2


def test_multicall_of_reads_is_retried(store: ReplayServer) -> None:
    with client_for(store) as client:
        store.state.inject("http500", "multiCall", times=2)
        assert len(client.multi_call([("customer_address.list", [i]) for i in range(1, 51)])) == 50
    assert len(store.state.posts("multiCall")) == 3


def test_retries_are_bounded(store: ReplayServer) -> None:
    with client_for(store, retries=2) as client:
        store.state.inject("http500", "call", times=5)
        with pytest.raises(MagentoRetriableError, match="HTTP 500"):
            client.call("customer.list")
    assert len(store.state.posts("call")) == 3


@pytest.mark.parametrize("failure", ["http500", "drop", "slow"])
def test_writes_are_not_retried(store: ReplayServer, failure: str) -> None:
    store.state.slow_seconds = 0.8
    with client_for(store, timeout=0.4) as client:
        store.state.inject(failure, "call")
        with pytest.raises(MagentoRetriableError, match="may or may not have been applied"):
            client.call(
                "customer.update", ["221", {"lastname": "Updated", "taxvat": "ATU12345678"}]
            )
        store.state.inject(failure, "multiCall")
        with pytest.raises(MagentoRetriableError):
            client.multi_call([("customer.info", [5]), ("customer.delete", [999999])])
    assert len(store.state.posts("call")) == 1 and len(store.state.posts("multiCall")) == 1


@pytest.mark.parametrize("failure", ["http404", "dtd"])
def test_fatal_answers_are_not_retried(store: ReplayServer, failure: str) -> None:
    with client_for(store) as client:
        store.state.inject(failure, "call")
        with pytest.raises(MagentoFatalError):
            client.call("customer.list")
    assert len(store.state.posts("call")) == 1


def test_wsdl_with_a_dtd_is_refused() -> None:
    with ReplayServer(wsdl_doctype=b'<!DOCTYPE d [<!ENTITY e "x">]>\n') as store:
        with pytest.raises(MagentoFatalError, match=r"WSDL .* refused"):
            client_for(store).login()
        assert store.state.posts() == []


def test_wsdl_load_errors(store: ReplayServer, tmp_path: Path) -> None:
    with pytest.raises(MagentoFatalError, match="HTTP 404: check the store URL"):
        client_for(store, url=store.url + "shop/").login()
    store.state.wsdl_failures = 2  # 503 twice, then the WSDL: a read, so retried
    with client_for(store) as client:
        assert client.namespace == "urn:Magento"
    wsdl = (WSDL_DIR / "magento_ce19.wsdl").read_text()
    evil = '<import namespace="urn:evil" schemaLocation="http://evil.invalid/x.xsd"/>'
    (tmp_path / "evil.wsdl").write_text(wsdl.replace("<complexType", evil + "<complexType", 1))
    store.state.wsdl_file = str(tmp_path / "evil.wsdl")
    with pytest.raises(MagentoFatalError, match="ExternalReferenceForbidden"):
        client_for(store).login()
    gets = [c for c in store.state.captured if c.method == "GET"]
    assert len(gets) == 5 and store.state.posts() == [p for p in store.state.posts() if p.operation]


def test_relogin_once_on_session_expiry(store: ReplayServer) -> None:
    with client_for(store) as client:
        store.state.inject("expire", "call")
        assert len(client.call("customer_group.list")) == 7
        store.state.inject("expire", "multiCall")
        assert len(client.multi_call(MULTICALL_3)) == 3
        store.state.inject("expire", "call")  # a write too: fault 5 means it never ran
        assert client.call(
            "customer.update", ["221", {"lastname": "Updated", "taxvat": "ATU12345678"}]
        )
    assert len(store.state.posts("login")) == 4
    sessions = [
        codec.decode_parts(codec.body_element(codec.parse_xml(c.body)))["sessionId"]
        for c in store.state.posts("call")
    ]
    assert sessions[0] != sessions[1] and sessions[1] == store.state.issued[1]


def test_session_expiring_again_after_relogin_is_survived(store: ReplayServer) -> None:
    """Threads share the session: it can expire again before the retried call lands."""
    with client_for(store) as client:
        store.state.inject("expire", "call", times=2)
        assert len(client.call("customer_group.list")) == 7
    assert len(store.state.posts("login")) == 3


def test_session_expiring_on_every_try_raises(store: ReplayServer) -> None:
    with client_for(store) as client:
        store.state.inject("expire", "call", times=SESSION_ATTEMPTS)
        with pytest.raises(MagentoSessionExpired):
            client.call("customer_group.list")
    assert len(store.state.posts("login")) == SESSION_ATTEMPTS


def test_end_session_always_runs(store: ReplayServer) -> None:
    with pytest.raises(ZeroDivisionError), client_for(store) as client:
        client.call("customer_group.list")
        _ = 1 / 0
    assert store.state.posts()[-1].operation == "endSession" and store.state.sessions == set()
    store.state.inject("drop", "endSession")
    with pytest.raises(KeyError, match="original"), client_for(store):
        raise KeyError("original")  # the endSession failure is swallowed, this one is not
    with client_for(store):
        store.state.sessions.clear()  # session already gone on the store: exit stays quiet
    assert [c.operation for c in store.state.posts()][-2:] == ["login", "endSession"]


def test_lazy_login_and_calls_after_end(store: ReplayServer) -> None:
    client = client_for(store)
    assert len(client.call("customer_group.list")) == 7
    client.end_session()
    assert len(client.call("customer_group.list")) == 7
    client.end_session()
    assert [c.operation for c in store.state.posts()] == ["login", "call", "endSession"] * 2


def test_thread_pool_shares_one_client(store: ReplayServer) -> None:
    calls = [("customer_address.list", [i]) for i in range(1, 51)]
    with client_for(store, pool_size=4) as client:
        store.state.inject("expire", "multiCall")
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: client.multi_call(calls), range(12)))
    assert all(len(r) == 50 and len(r[1]) == 3 for r in results)
    assert len(store.state.posts("login")) == 2  # one re-login for all threads
    assert store.state.misses == []


# --- secrets ------------------------------------------------------------------------------

SENTINEL = "SENTINEL-api-key-5bd1c7"


def test_api_key_and_session_ids_never_leak(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    with ReplayServer(api_key=SENTINEL) as store:
        client = client_for(store, api_key=SENTINEL)
        with client:
            client.call("customer.list")
            store.state.inject("http500", "call")
            store.state.inject("expire", "multiCall")
            client.multi_call(
                [("customer.info", [5]), ("customer.info", [999999]), ("customer_group.list", None)]
            )
            for resource, args in [("customer.info", [999999]), ("customer.nosuchmethod", None)]:
                try:
                    client.call(resource, args)
                except MagentoError as error:
                    errors.append(error)
            store.state.inject("drop", "call")
            try:
                client.call("customer.update", ["221", {"lastname": "x"}])
            except MagentoError as error:
                errors.append(error)
        for drops in (0, 3):  # refused, then three dropped connections
            store.state.inject("drop", "login", times=drops)
            try:
                client_for(store, api_key=SENTINEL + "-wrong").login()
            except MagentoError as error:
                errors.append(error)
        issued = list(store.state.issued)
    assert len(issued) >= 2 and len(errors) == 5
    assert isinstance(errors[3], MagentoAuthError) and isinstance(errors[4], MagentoRetriableError)
    assert any(r.name == "magsync.soap" for r in caplog.records)
    texts = [caplog.text, repr(client), *(str(e) for e in errors), *(repr(e) for e in errors)]
    for text in texts:
        assert SENTINEL not in text
        assert not any(session in text for session in issued)
    for error in errors:  # nor does any chained exception keep the request around
        link: BaseException | None = error
        while link is not None:
            assert getattr(link, "request", None) is None, repr(link)
            link = link.__cause__ or link.__context__
    assert "customer.list ok" in caplog.text


def test_timing_budget() -> None:
    # Guards the "well under 20 s" budget of this file: one client round trip is fast.
    started = time.perf_counter()
    with ReplayServer() as store, client_for(store) as client:
        client.call("customer.list")
    assert time.perf_counter() - started < 2.0
