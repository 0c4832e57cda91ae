"""Documents and other content parts across both APIs (docs/api.md, "Content parts"): a chat
client's `file` part at an Anthropic deployment becomes a `document` block, a Messages client's
`document` block at an OpenAI-format deployment a `file` part; what the other side cannot read is
a 400 naming the deployment, before any provider is called. Translated answers carry their API's
ids. The mock refuses what the real providers refuse, so these tests see the real behaviour."""

import base64
import json

from harness import MASTER_KEY, MOCK_KEY, chat_body, check, contains, eq, http, wait_until
from test_providers import anthropic_config, messages_req, sse_events
from test_telemetry import sqlite_rows

# A 2-page PDF as a PDF writer lays it out (page objects visible).
PDF = (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
       b"2 0 obj << /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 >> endobj\n"
       b"3 0 obj << /Type /Page /Parent 2 0 R >> endobj\n"
       b"4 0 obj << /Type /Page /Parent 2 0 R >> endobj\n%%EOF\n")
PDF_B64 = base64.b64encode(PDF).decode()
PDF_URL = "data:application/pdf;base64," + PDF_B64


def both(fx, db=None, **mock_faults):
    """app/claude (Anthropic deployment, id claude) and app/gpt (OpenAI-format, id primary) in
    front of one mock."""
    m = fx.mock(name="both", **mock_faults)
    cfg = fx.config([m], alias="app/gpt")
    cfg["model_list"] += anthropic_config(fx, m, alias="app/claude")["model_list"]
    if db:
        cfg["general_settings"]["database_url"] = "sqlite://" + db
    return m, fx.gateway(cfg)


def chat_parts(model, *parts, **extra):
    return dict({"model": model, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Summarise this."}] + list(parts)}]}, **extra)


def file_part(data_url, filename="report.pdf"):
    f = {"file_data": data_url}
    if filename:
        f["filename"] = filename
    return {"type": "file", "file": f}


def msg_body(model, *blocks, **extra):
    return dict({"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": list(
        blocks) + [{"type": "text", "text": "Summarise this."}]}]}, **extra)


def pdf_block(**extra):
    return dict({"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                                 "data": PDF_B64}}, **extra)


def wait_rows(db, n):
    wait_until(lambda: len(sqlite_rows(db, "SELECT request_id FROM slogate_requests") or []) >= n,
               15, "%d rows in the store" % n)


def requests_seen(m):
    return m.stats()["requests"]


def test_chat_pdf_file_part_becomes_an_anthropic_document(fx):
    db = fx.path("d.db")
    m, gw = both(fx, db)
    text = base64.b64encode("Grüße aus Köln".encode()).decode()
    r = gw.chat(chat_parts("app/claude", file_part(PDF_URL),
                           file_part("data:text/plain;base64," + text, "notes.txt"),
                           max_tokens=8))
    eq(r.status, 200, "a PDF through an Anthropic deployment (%s)" % r.text[:300])
    sent = m.last()["body"]["messages"][0]["content"]
    eq(sent[1], {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                                "data": PDF_B64}, "title": "report.pdf"},
       "the file part as Anthropic's document block")
    eq(sent[2], {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                                "data": "Grüße aus Köln"}, "title": "notes.txt"},
       "plain text as a text document (Anthropic takes no base64 text)")
    j = r.json()
    check(j["id"].startswith("chatcmpl-"), "a chat client sees a chatcmpl- id: %r" % j["id"])
    # The provider reported usage: the row holds its counts, not the estimate.
    rid = r.header("x-request-id")
    wait_rows(db, 1)
    rows = sqlite_rows(db, "SELECT input_tokens, output_tokens FROM slogate_requests WHERE "
                           "request_id = '%s'" % rid)
    eq(rows[0], (j["usage"]["prompt_tokens"], j["usage"]["completion_tokens"]),
       "the row's tokens are the provider's")
    # Streamed: every chunk carries the chatcmpl- id.
    r = gw.chat(chat_parts("app/claude", file_part(PDF_URL), stream=True, max_tokens=3))
    eq(r.status, 200, "stream (%s)" % r.text[:300])
    ids = {json.loads(e)["id"] for e in r.sse_events()[:-1]}
    eq(len(ids), 1, "one id for the stream: %r" % ids)
    check(ids.pop().startswith("chatcmpl-"), "stream chunks carry a chatcmpl- id")


def test_chat_parts_anthropic_cannot_read_are_a_400_naming_the_deployment(fx):
    m, gw = both(fx)
    cases = [
        ({"type": "file", "file": {"file_id": "file-abc123"}},
         "file.file_id names a file in OpenAI's Files API, which Anthropic cannot read"),
        (file_part("data:application/msword;base64,0M8R4KGxGuE=", "a.doc"),
         "a file of type 'application/msword' cannot be read by Anthropic"),
        (file_part(PDF_B64), "file.file_data must be a base64 data URL"),
        ({"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
         "part type 'input_audio' is not supported by Anthropic deployments"),
    ]
    for part, says in cases:
        r = gw.chat(chat_parts("app/claude", part))
        eq(r.status, 400, "%s (%s)" % (says, r.text[:300]))
        msg = r.json()["error"]["message"]
        contains(msg, "messages[0].content[1]: " + says, "the refusal says what and where")
        contains(msg, "deployment claude", "and names the deployment")
        eq(r.header("x-slogate-deployment"), "claude", "x-slogate-deployment")
    eq(requests_seen(m), 0, "no provider was called")
    # The same parts go to an OpenAI-format deployment as they are.
    r = gw.chat(chat_parts("app/gpt", file_part(PDF_URL)))
    eq(r.status, 200, "a file part at an OpenAI deployment (%s)" % r.text[:300])
    eq(m.last()["body"]["messages"][0]["content"][1], file_part(PDF_URL), "sent as it came")


def test_messages_documents_become_openai_file_and_text_parts(fx):
    m, gw = both(fx)
    r = messages_req(gw.port, msg_body(
        "app/gpt", pdf_block(title="Q3 report", context="From finance.",
                             citations={"enabled": True}, cache_control={"type": "ephemeral"}),
        {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                        "data": "The grass is green."}}))
    eq(r.status, 200, "a document block through an OpenAI deployment (%s)" % r.text[:300])
    sent = m.last()["body"]["messages"][0]["content"]
    eq(sent[:3], [{"type": "file", "file": {"filename": "Q3 report.pdf", "file_data": PDF_URL}},
                  {"type": "text", "text": "From finance."},
                  {"type": "text", "text": "The grass is green."}],
       "PDF -> file part with a filename, context and text source -> text parts")
    j = r.json()
    check(j["id"].startswith("msg_"), "a Messages client sees a msg_ id: %r" % j["id"])
    eq(j["type"], "message", "a Messages answer")
    r = messages_req(gw.port, msg_body("app/gpt", pdf_block(), stream=True))
    eq(r.status, 200, "stream (%s)" % r.text[:300])
    start = sse_events(r.body)[0]
    eq(start[0], "message_start", "first event")
    check(start[1]["message"]["id"].startswith("msg_"), "message_start carries a msg_ id")
    # The same block goes to an Anthropic deployment as it is.
    r = messages_req(gw.port, msg_body("app/claude", pdf_block(title="Q3 report")))
    eq(r.status, 200, "a document at an Anthropic deployment (%s)" % r.text[:300])
    eq(m.last()["body"]["messages"][0]["content"][0], pdf_block(title="Q3 report"), "as it came")


def test_messages_documents_openai_cannot_take_are_a_400_naming_the_deployment(fx):
    m, gw = both(fx)
    cases = [
        ({"type": "url", "url": "https://example.com/a.pdf"},
         "a document with a url source cannot be sent to an OpenAI-compatible deployment"),
        ({"type": "file", "file_id": "file_011CNha8iCJcU1wXNR6q4V8w"},
         "a document with a file source (Anthropic's Files API)"),
        ({"type": "base64", "media_type": "text/plain", "data": "eA=="},
         "a base64 document must be application/pdf"),
    ]
    for src, says in cases:
        r = messages_req(gw.port, msg_body("app/gpt", {"type": "document", "source": src}))
        eq(r.status, 400, "%s (%s)" % (says, r.text[:300]))
        j = r.json()
        eq(j["type"], "error", "Anthropic's error shape")
        contains(j["error"]["message"], "messages.0.content.0: " + says, "what and where")
        contains(j["error"]["message"], "deployment primary", "and the deployment")
    eq(requests_seen(m), 0, "no provider was called")


def test_messages_tool_result_images_and_documents_follow_the_tool_message(fx):
    # OpenAI's tool messages take text only: a tool result's image and PDF go to the user
    # message right after the tool messages, its text stays the tool's answer.
    m, gw = both(fx)
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    body = {"model": "app/gpt", "max_tokens": 16, "messages": [
        {"role": "user", "content": "Take a screenshot"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "shot",
                                           "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                {"type": "text", "text": "Here it is"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": png}},
                pdf_block()]},
            {"type": "text", "text": "What does it show?"}]}],
        "tools": [{"name": "shot", "input_schema": {"type": "object"}}]}
    r = messages_req(gw.port, body)
    eq(r.status, 200, "the mock (as OpenAI) takes it (%s)" % r.text[:300])
    sent = m.last()["body"]["messages"]
    eq(sent[2], {"role": "tool", "tool_call_id": "toolu_1", "content": "Here it is"},
       "the tool message keeps the text")
    eq(sent[3], {"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + png}},
        {"type": "file", "file": {"filename": "document.pdf", "file_data": PDF_URL}},
        {"type": "text", "text": "What does it show?"}]}, "the media follow in the user message")
    # An image URL source goes as an image_url part with the URL.
    r = messages_req(gw.port, msg_body("app/gpt", {"type": "image", "source": {
        "type": "url", "url": "https://example.com/cat.png"}}))
    eq(r.status, 200, "an image by URL (%s)" % r.text[:300])
    eq(m.last()["body"]["messages"][0]["content"][0],
       {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}, "image_url")


def test_document_input_estimate_is_per_page(fx):
    # A provider that reports no usage: the row holds the estimate, and a 2-page PDF costs
    # 2 x 3,000 tokens (docs/pricing.md), not the length of its base64 text.
    db = fx.path("e.db")
    m, gw = both(fx, db, no_usage=True)
    small = gw.chat(chat_parts("app/gpt"))
    pdf = gw.chat(chat_parts("app/gpt", file_part(PDF_URL)))
    eq((small.status, pdf.status), (200, 200), "answers (%s)" % pdf.text[:200])
    wait_rows(db, 2)
    tokens = dict(sqlite_rows(db, "SELECT request_id, input_tokens FROM slogate_requests"))
    eq(tokens[pdf.header("x-request-id")] - tokens[small.header("x-request-id")], 6000,
       "the PDF's estimate: 2 pages x 3,000")


def test_mock_refuses_what_the_providers_refuse(fx):
    m = fx.mock(name="strict")
    oai = lambda b: http(m.port, "POST", "/v1/chat/completions", b, key=MOCK_KEY)
    ant = lambda b: http(m.port, "POST", "/v1/messages", b, key=None,
                         headers={"x-api-key": MOCK_KEY})
    r = oai(chat_parts("m", file_part(PDF_URL, filename=None)))
    eq(r.status, 400, "file_data without a filename (%s)" % r.text)
    contains(r.json()["error"]["message"],
             "Missing required parameter: 'messages[0].content[1].file.file_id'", "OpenAI's words")
    r = oai({"model": "m", "messages": [{"role": "tool", "tool_call_id": "c", "content": [
        {"type": "image_url", "image_url": {"url": "https://x/a.png"}}]}]})
    eq(r.status, 400, "an image in a tool message (%s)" % r.text)
    contains(r.json()["error"]["message"], "Supported values are: 'text'", "text only")
    r = oai(chat_parts("m", {"type": "document", "source": {}}))
    eq(r.status, 400, "a document block at OpenAI (%s)" % r.text)
    r = ant(msg_body("m", {"type": "document", "source": {"type": "base64", "media_type":
                                                           "text/plain", "data": "eA=="}}))
    eq(r.status, 400, "base64 plain text at Anthropic (%s)" % r.text)
    contains(r.json()["error"]["message"], "Input should be 'application/pdf'", "Anthropic's words")
    r = ant(msg_body("m", {"type": "file", "file": {"file_data": PDF_URL}}))
    eq(r.status, 400, "an OpenAI file part at Anthropic (%s)" % r.text)
    r = ant(msg_body("m", {"type": "image", "source": {"type": "base64", "media_type":
                                                        "application/pdf", "data": "eA=="}}))
    eq(r.status, 400, "a PDF as an image at Anthropic (%s)" % r.text)
    # And takes what they take.
    eq(oai(chat_parts("m", file_part(PDF_URL))).status, 200, "OpenAI file part")
    eq(ant(msg_body("m", pdf_block(title="t", context="c", citations={"enabled": True}))).status,
       200, "Anthropic document block")
