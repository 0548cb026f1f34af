"""The web app through FastAPI's TestClient: sign-in, tokens, escaping, the page's keys, bounded bodies, and
labels stored once however they arrive (concurrently, repeated)."""

import re
import secrets
import threading

import pytest
from fastapi.testclient import TestClient

from rlhf_ads.annotate.app import COOKIE, MAX_BODY_BYTES, create_app


@pytest.fixture
def app(store):
    return create_app(store, overlap=2)


def client_for(app, token=None) -> TestClient:
    client = TestClient(app)
    if token:
        client.headers["Authorization"] = f"Bearer {token}"
    return client


def label_via_api(client, choice="a", request_id=None) -> dict:
    shown = client.get("/api/next").json()
    assert not shown["done"]
    body = {"assignment_id": shown["assignment_id"], "choice": choice, "request_id": request_id or shown["request_id"]}
    response = client.post("/api/labels", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_every_route_but_sign_in_needs_a_known_unrevoked_token(app, store, tokens):
    anonymous = client_for(app)
    assert anonymous.get("/").status_code == 200
    for method, path in (("get", "/label"), ("post", "/label"), ("get", "/api/next"), ("post", "/api/labels"),
                         ("get", "/api/progress"), ("post", "/signout")):
        for client in (anonymous, client_for(app, "rla_unknown-token-000000000000000000000")):
            response = getattr(client, method)(path)
            assert response.status_code == 401, (method, path, response.text)
    assert anonymous.get("/api/next").headers["www-authenticate"] == "Bearer"
    assert client_for(app, tokens["ana"]).get("/api/progress").status_code == 200
    store.revoke_designer("ana")
    assert client_for(app, tokens["ana"]).get("/api/progress").status_code == 401


def test_sign_in_sets_a_strict_http_only_cookie_and_a_wrong_token_is_refused(app, tokens):
    client = client_for(app)
    wrong = client.post("/signin", data={"token": "rla_wrong"})
    assert wrong.status_code == 401 and "Unknown or revoked token" in wrong.text
    signed = client.post("/signin", data={"token": tokens["ben"]}, follow_redirects=False)
    assert signed.status_code == 303 and signed.headers["location"] == "/label"
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = client.get("/label")
    assert page.status_code == 200 and "Signed in as ben" in page.text
    assert client.get("/", follow_redirects=False).status_code == 303  # signed in: straight to the pairs
    client.post("/signout")
    assert client.get("/label").status_code == 401


def test_the_page_shows_the_brief_limits_widths_and_findings_with_every_text_escaped(app, store, tokens):
    client = client_for(app, tokens["ana"])
    seen = ""
    for _ in range(store.pair_count()):
        seen += client.get("/label").text
        label_via_api(client)
    assert "<script>alert" not in seen and "&lt;script&gt;alert(&#x27;brief&#x27;)&lt;/script&gt; notes app" in seen
    assert "<img src=x" not in seen and "&lt;img src=x onerror=alert(&#x27;ad&#x27;)&gt;" in seen
    assert "Google Ads responsive search ad headline: at most 30 characters" in seen
    assert "41 of 30 characters" in seen and 'class="over"' in seen  # the ad over the headline limit
    assert "superlative" in seen and "no findings" in seen  # the linter's findings, and their absence
    assert "Write a headline for a budgeting app for students." in seen  # a plain prompt as the brief
    assert not re.search(r"\b(ppo|sft)\b", re.sub(r"<[^>]+>", "", seen).lower())  # designers compare blind


def test_the_page_has_keyboard_shortcuts_and_a_nonce_content_security_policy(app, tokens):
    response = client_for(app, tokens["ana"]).get("/label")
    page = response.text
    for key in ("'1': 'a'", "'ArrowLeft': 'a'", "'2': 'b'", "'ArrowRight': 'b'", "'t': 'tie'", "'u': 'unusable'",
                "reason.focus()", "form.requestSubmit"):
        assert key in page, key
    for choice in ("a", "b", "tie", "unusable"):
        assert f'name="choice" value="{choice}"' in page
    nonce = re.search(r"script-src 'nonce-([^']+)'", response.headers["content-security-policy"])[1]
    assert f'<script nonce="{nonce}">' in page and page.count("<script") == 1
    assert response.headers["x-frame-options"] == "DENY" and response.headers["cache-control"] == "no-store"
    assert re.search(r'id="progress">0 of 4 labelled', page)


def test_a_label_from_the_form_is_stored_and_a_resubmitted_form_changes_nothing(app, store, tokens):
    client = client_for(app, tokens["cleo"])
    page = client.get("/label").text
    form = dict(re.findall(r'name="(assignment_id|request_id)" value="([^"]+)"', page), choice="b", reason="too long")
    assert client.post("/label", data=form, follow_redirects=False).status_code == 303
    assert client.post("/label", data=form, follow_redirects=False).status_code == 303  # a double click
    [label] = store.labels()
    assert (label.designer, label.choice, label.reason) == ("cleo", "b", "too long")
    changed = client.post("/label", data=dict(form, choice="a", request_id="another-request"))
    assert changed.status_code == 409 and "already labelled" in changed.text
    assert "1 of 4 labelled" in client.get("/label").text


def test_bodies_are_validated_and_bounded(app, tokens):
    client = client_for(app, tokens["ana"])
    shown = client.get("/api/next").json()
    good = {"assignment_id": shown["assignment_id"], "choice": "a", "request_id": shown["request_id"]}
    for bad in ({**good, "choice": "left"}, {**good, "reason": "x" * 501}, {**good, "request_id": "no spaces here!"},
                {**good, "extra": 1}, {"choice": "a"}):
        assert client.post("/api/labels", json=bad).status_code == 422, bad
    huge = client.post("/api/labels", content=b"{" + b" " * MAX_BODY_BYTES + b"}",
                       headers={"content-type": "application/json"})
    assert huge.status_code == 413
    streamed = client.post("/signin", content=iter([b"token=" + b"x" * MAX_BODY_BYTES] * 2))  # no content-length
    assert streamed.status_code == 413
    assert client.post("/api/labels", json={**good, "assignment_id": "not-shown-to-ana"}).status_code == 404
    assert client.post("/api/labels", json=good).status_code == 200


def test_a_repeated_request_is_stored_once(app, store, tokens):
    client = client_for(app, tokens["ana"])
    shown = client.get("/api/next").json()
    body = {"assignment_id": shown["assignment_id"], "choice": "tie", "reason": "both fine", "request_id": "retry-0001"}
    first, second = (client.post("/api/labels", json=body).json() for _ in range(2))
    assert first["duplicate"] is False and second["duplicate"] is True and first["label_id"] == second["label_id"]
    assert len(store.labels()) == 1 and first["progress"]["labelled"] == 1


def test_concurrent_designers_submitting_at_once_lose_and_double_nothing(tmp_path, store):
    tokens = {f"d{i}": store.add_designer(f"d{i}") for i in range(6)}
    app = create_app(store, overlap=3)
    acknowledged, errors = [], []
    barrier = threading.Barrier(len(tokens))

    def designer(token):
        client = client_for(app, token)
        barrier.wait()
        try:
            while not (shown := client.get("/api/next").json())["done"]:
                body = {"assignment_id": shown["assignment_id"], "choice": secrets.choice("ab"),
                        "request_id": shown["request_id"]}
                for _ in range(2):  # every request sent twice, as a flaky network would
                    response = client.post("/api/labels", json=body)
                    assert response.status_code == 200, response.text
                acknowledged.append((token, response.json()["label_id"]))
        except BaseException as exc:  # reported below, from the main thread
            errors.append(exc)

    threads = [threading.Thread(target=designer, args=(t,)) for t in tokens.values()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[0]
    labels = store.labels()
    assert len(acknowledged) == len(labels) == store.pair_count() * 3  # every pair labelled by exactly three
    assert sorted(label_id for _, label_id in acknowledged) == sorted(label.id for label in labels)
    assert len({(label.pair_id, label.designer) for label in labels}) == len(labels)
