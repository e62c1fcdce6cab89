"""Static files under ASGI, through the async-capable WhiteNoise middleware: a stylesheet is
served with its headers, and every other path goes on to Django."""

import asyncio

import pytest
from django.test import AsyncClient, override_settings


@pytest.mark.django_db
@override_settings(WHITENOISE_USE_FINDERS=True, WHITENOISE_AUTOREFRESH=False)
def test_stylesheet_is_served_and_pages_still_answer():
    async def scenario():
        client = AsyncClient()
        css = await client.get("/static/css/app.css")
        body = b"".join(css.streaming_content)
        missing = await client.get("/static/css/no-such-file.css")
        login = await client.get("/accounts/login/")
        return css, body, missing, login

    css, body, missing, login = asyncio.run(scenario())
    assert css.status_code == 200
    assert css["Content-Type"].startswith("text/css")
    assert b"{" in body
    assert missing.status_code == 404
    assert login.status_code == 200
