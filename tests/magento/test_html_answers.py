"""A store URL that answers with an HTML page says so, not "XML with a DTD"."""

from __future__ import annotations

from pathlib import Path

import pytest

from magsync.magento.client import MagentoClient
from magsync.magento.errors import MagentoFatalError
from magsync.magento.transport import classify_response, html_page
from tests.magento.replay_server import ReplayServer

# A Magento 1 theme's page: XHTML doctype (a DTD to an XML parser), unclosed tags.
SHOP_PAGE = (b'<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN"\n'
             b'  "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\n'
             b'<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en"><head>'
             b"<title>Home page</title><br></head><body>Welcome</body></html>\n")
BARE_PAGE = b"\n<html>\n<head><title>Login</title></head><body><p>Sign in<br></body></html>"


@pytest.mark.parametrize("page", [SHOP_PAGE, BARE_PAGE, b"\xef\xbb\xbf<!doctype html><p>x",
                                  b'<?xml version="1.0"?>\n<!-- x -->\n<HTML><body/></HTML>'])
def test_html_pages_are_recognised(page: bytes) -> None:
    assert html_page(page)


@pytest.mark.parametrize("body", [b'<?xml version="1.0"?><definitions/>',
                                  b"<SOAP-ENV:Envelope/>", b"<htmlish/>", b""])
def test_xml_is_not_html(body: bytes) -> None:
    assert not html_page(body)


@pytest.mark.parametrize("page", [SHOP_PAGE, BARE_PAGE])
def test_wsdl_url_serving_html(tmp_path: Path, page: bytes) -> None:
    (tmp_path / "home.html").write_bytes(page)
    with ReplayServer(wsdl_file=str(tmp_path / "home.html")) as store:
        client = MagentoClient(store.url, "etl", store.state.api_key, timeout=2.0, retries=2,
                               backoff_base=0.001)
        with pytest.raises(MagentoFatalError) as caught:
            client.login()
        assert store.state.posts() == []
    message = str(caught.value)
    assert "answered with an HTML page, not a WSDL" in message
    assert "DTD" not in message and "truncated" not in message
    # Not retried: one GET of the WSDL.
    assert len([c for c in store.state.captured if c.method == "GET"]) == 1


def test_soap_answer_that_is_html() -> None:
    with pytest.raises(MagentoFatalError, match="HTML page, not SOAP: check the store URL"):
        classify_response(200, SHOP_PAGE, {}, "customer.list")
