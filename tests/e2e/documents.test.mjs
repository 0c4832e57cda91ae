// Documents across wire formats with the official SDKs: the openai SDK sending a PDF `file` part
// through an Anthropic deployment, the @anthropic-ai/sdk sending a `document` block through an
// OpenAI-format one; what the other provider cannot read is an error the SDK raises as a 400.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

import { startBothApis } from './helpers.mjs';

const T = { timeout: 15000 };
const PDF = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n' +
  '2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n' +
  '3 0 obj << /Type /Page /Parent 2 0 R >> endobj\n%%EOF\n').toString('base64');

describe('documents through the SDKs', () => {
  let mock;
  let anthropic;
  let openai;
  let close;

  before(async () => {
    ({ mock, anthropic, openai, close } = await startBothApis());
  });

  after(async () => {
    if (close) assert.equal(await close(), 0, 'gateway exit code after SIGTERM');
  });

  test('openai SDK: a PDF file part through an Anthropic deployment', T, async () => {
    const done = await openai.chat.completions.create({
      model: 'app/claude', max_tokens: 8,
      messages: [{ role: 'user', content: [
        { type: 'text', text: 'Summarise this.' },
        { type: 'file', file: { filename: 'report.pdf', file_data: `data:application/pdf;base64,${PDF}` } },
      ] }],
    });
    assert.match(done.id, /^chatcmpl-/);
    assert.equal(done.object, 'chat.completion');
    assert.match(done.choices[0].message.content, /^Mock answer from both/);
    const last = await mock.last();
    assert.equal(last.path, '/v1/messages');
    assert.deepEqual(last.body.messages[0].content[1], {
      type: 'document', title: 'report.pdf',
      source: { type: 'base64', media_type: 'application/pdf', data: PDF },
    });
  });

  test('openai SDK: a file_id at an Anthropic deployment is a 400', T, async () => {
    await assert.rejects(openai.chat.completions.create({
      model: 'app/claude',
      messages: [{ role: 'user', content: [{ type: 'file', file: { file_id: 'file-abc' } }] }],
    }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `a BadRequestError: ${e}`);
      assert.match(e.message, /file\.file_id names a file in OpenAI's Files API/);
      assert.match(e.message, /deployment claude/);
      return true;
    });
  });

  test('anthropic SDK: a document block through an OpenAI deployment', T, async () => {
    const msg = await anthropic.messages.create({
      model: 'app/gpt', max_tokens: 8,
      messages: [{ role: 'user', content: [
        { type: 'document', title: 'Q3', source: { type: 'base64', media_type: 'application/pdf', data: PDF } },
        { type: 'text', text: 'Summarise this.' },
      ] }],
    });
    assert.match(msg.id, /^msg_/);
    assert.equal(msg.type, 'message');
    assert.match(msg.content[0].text, /^Mock answer from both/);
    const last = await mock.last();
    assert.equal(last.path, '/v1/chat/completions');
    assert.deepEqual(last.body.messages[0].content[0], {
      type: 'file', file: { filename: 'Q3.pdf', file_data: `data:application/pdf;base64,${PDF}` },
    });
    // Streamed, the message_start id is a Messages id too.
    const stream = anthropic.messages.stream({
      model: 'app/gpt', max_tokens: 4,
      messages: [{ role: 'user', content: [
        { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: PDF } },
        { type: 'text', text: 'Summarise this.' },
      ] }],
    });
    const final = await stream.finalMessage();
    assert.match(final.id, /^msg_/);
  });

  test('anthropic SDK: a document by URL at an OpenAI deployment is a 400', T, async () => {
    await assert.rejects(anthropic.messages.create({
      model: 'app/gpt', max_tokens: 8,
      messages: [{ role: 'user', content: [
        { type: 'document', source: { type: 'url', url: 'https://example.com/a.pdf' } },
        { type: 'text', text: 'Summarise this.' },
      ] }],
    }), (e) => {
      assert.ok(e instanceof Anthropic.BadRequestError, `a BadRequestError: ${e}`);
      assert.match(e.message, /a document with a url source cannot be sent to an OpenAI-compatible deployment/);
      assert.match(e.message, /deployment gpt/);
      return true;
    });
  });
});
