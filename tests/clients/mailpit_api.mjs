// Drives Mailpit's npm client, mailpit-api, against a running mxrelay, as the client's own
// end-to-end suite drives Mailpit: every call, with Basic auth, comparing key sets exactly.
//
// CLIENT=current runs mailpit-api (fetch-based, no websocket); CLIENT=events runs its last release
// with the websocket helper (mailpit-api-events, an npm alias) and checks the /api/events frames
// each call causes. BASE_URL is the relay's web address; MP_USERNAME/MP_PASSWORD an operator's
// credentials (none: no auth); RELEASE_TO an address the relay accepts. Prints one JSON object:
// {"passed": [step, ...], "failed": {step: reason}}; exits 0 either way (pytest judges).

import assert from "node:assert/strict";

const { BASE_URL, MP_USERNAME, MP_PASSWORD, RELEASE_TO, CLIENT = "current" } = process.env;
const auth = MP_USERNAME ? { username: MP_USERNAME, password: MP_PASSWORD ?? "" } : undefined;
const EVENTS = CLIENT === "events";
const { MailpitClient } = await import(EVENTS ? "mailpit-api-events" : "mailpit-api");

/** The client, as each release takes its credentials. */
function client(credentials) {
  return EVENTS
    ? new MailpitClient(BASE_URL, credentials)
    : new MailpitClient(BASE_URL, credentials ? { auth: credentials } : undefined);
}

/** A part as the current release gives it (a Blob) or the older one ({data, contentType}). */
async function part(fetched) {
  if (typeof Blob !== "undefined" && fetched instanceof Blob) {
    return { type: fetched.type, size: fetched.size };
  }
  return { type: fetched.contentType, size: fetched.data.byteLength };
}

const mailpit = client(auth);

// A 16×12 grey PNG.
const PNG =
  "iVBORw0KGgoAAAANSUhEUgAAABAAAAAMCAAAAABOjGJdAAAAD0lEQVR4nGNoQAMMQ1cAAEMGYAGglV7ZAAAAAElFTkSuQmCC";
const SUBJECT = "Test Email with Attachment";
const HTML =
  '<div style="text-align:center"><p>Mailpit is <b>awesome</b>!</p>' +
  '<p>An inline image: <img src="cid:inline-image" /></p>' +
  '<p><a href="https://example.net/">Example Link</a></p></div>';
const sendRequest = {
  From: { Email: "sender@example.org", Name: "Sender Name" },
  To: [{ Email: "recipient@example.net", Name: "Recipient Name" }],
  Cc: [{ Email: "cc@example.net", Name: "Carbon Name" }],
  Bcc: ["bcc@example.net"],
  ReplyTo: [{ Email: "noreply@example.org", Name: "No Reply" }],
  Subject: SUBJECT,
  Text: "This is a test email with an attachment.",
  HTML,
  Headers: {
    "List-Unsubscribe": "<mailto:unsubscribe@example.org>, <https://example.org/unsubscribe>",
  },
  Attachments: [
    { Content: PNG, Filename: "test.png" },
    { Content: PNG, Filename: "test.png", ContentID: "inline-image", ContentType: "image/png" },
  ],
};

const keys = (value) => Object.keys(value).sort();
const ADDRESS = ["Address", "Name"];
const SUMMARY = [
  "Attachments", "Bcc", "Cc", "Created", "From", "ID", "MessageID", "Read", "ReplyTo", "Size",
  "Snippet", "Subject", "Tags", "To", "Username",
];
const LISTING = [
  "count", "messages", "messages_count", "messages_unread", "start", "tags", "total", "unread",
];
const MESSAGE = [
  "Attachments", "Bcc", "Cc", "Date", "From", "HTML", "ID", "Inline", "ListUnsubscribe",
  "MessageID", "ReplyTo", "ReturnPath", "Size", "Subject", "Tags", "Text", "To", "Username",
];
const ATTACHMENT = ["Checksums", "ContentID", "ContentType", "FileName", "PartID", "Size"];
const HEADERS = [
  "Bcc", "Cc", "Content-Type", "Date", "From", "List-Unsubscribe", "Message-Id", "Mime-Version",
  "Reply-To", "Return-Path", "Subject", "To",
];
const STATS = ["Total", "Unread", "Version"];

function assertAddresses(list, count) {
  assert.equal(list.length, count);
  for (const address of list) assert.deepEqual(keys(address), ADDRESS);
}

function assertSummary(summary) {
  assert.deepEqual(keys(summary), SUMMARY);
  assert.deepEqual(keys(summary.From), ADDRESS);
  for (const field of ["To", "Cc", "Bcc", "ReplyTo"]) assertAddresses(summary[field], summary[field].length);
  assert.equal(typeof summary.Attachments, "number");
  assert.equal(typeof summary.Read, "boolean");
  if (auth) assert.equal(summary.Username, auth.username);
}

function assertListing(listing) {
  assert.deepEqual(keys(listing), LISTING);
  assert.equal(listing.count, listing.messages.length);
  for (const summary of listing.messages) assertSummary(summary);
}

function assertMessage(message) {
  assert.deepEqual(keys(message), MESSAGE);
  assert.deepEqual(keys(message.ListUnsubscribe), ["Errors", "Header", "HeaderPost", "Links"]);
  for (const attachment of [...message.Attachments, ...message.Inline]) {
    assert.deepEqual(keys(attachment), ATTACHMENT);
    assert.deepEqual(keys(attachment.Checksums), ["MD5", "SHA1", "SHA256"]);
  }
  assert.deepEqual(keys(message.From), ADDRESS);
  assertAddresses(message.To, 1);
  assertAddresses(message.Cc, 1);
  assertAddresses(message.Bcc, 1);
  assertAddresses(message.ReplyTo, 1);
  if (auth) assert.equal(message.Username, auth.username);
}

function assertStats(event) {
  assert.equal(event.Type, "stats");
  assert.deepEqual(keys(event.Data), STATS);
}

/** The next event of `type` that `match` accepts (others, such as a late frame about an earlier
 * action, are passed over). */
function nextEvent(type, match, timeout = 5000) {
  return new Promise((resolve, reject) => {
    const stop = mailpit.onEvent(type, (event) => {
      if (!match(event)) return;
      clearTimeout(timer);
      stop();
      resolve(event);
    });
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`no ${type} event within ${timeout} ms`));
    }, timeout);
  });
}

/** The event of `type` the action causes, and with it a stats event (as Mailpit sends). */
async function expectEvents(type, action, { stats = true, match = () => true } = {}) {
  if (!EVENTS) return [await action(), undefined];
  const wanted = nextEvent(type, match);
  const counted = stats ? nextEvent("stats", () => true) : Promise.resolve(undefined);
  // Awaited below; until then a timeout must not count as an unhandled rejection.
  wanted.catch(() => {});
  counted.catch(() => {});
  const result = await action();
  const event = await wanted;
  if (stats) assertStats(await counted);
  return [result, event];
}

const state = {};
/** The message the steps share; a step that needs it fails at once when sending failed. */
const sentID = () => state.id ?? assert.fail("no message was sent");
const steps = [];
const step = (name, run) => steps.push([name, run]);

if (EVENTS) {
  step("websocket connects with Basic auth", async () => {
    mailpit.onEvent("*", () => {});
    const deadline = Date.now() + 10_000;
    while (mailpit.webSocket?.readyState !== 1) {
      if (Date.now() > deadline) throw new Error("the websocket did not open");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });
}

step("getInfo", async () => {
  const info = await mailpit.getInfo();
  assert.deepEqual(keys(info), [
    "Database", "DatabaseSize", "LatestVersion", "Messages", "RuntimeStats", "Tags", "Unread",
    "Version",
  ]);
  assert.deepEqual(keys(info.RuntimeStats), [
    "Memory", "MessagesDeleted", "SMTPAccepted", "SMTPAcceptedSize", "SMTPIgnored",
    "SMTPRejected", "Uptime",
  ]);
  assert.match(info.Version, /^v/);
});

step("getConfiguration", async () => {
  state.config = await mailpit.getConfiguration();
  assert.deepEqual(keys(state.config), [
    "ChaosEnabled", "DuplicatesIgnored", "HideDeleteAllButton", "Label", "MessageRelay",
    "SpamAssassin",
  ]);
  assert.deepEqual(keys(state.config.MessageRelay), [
    "AllowedRecipients", "BlockedRecipients", "Enabled", "OverrideFrom", "PreserveMessageIDs",
    "RecipientAllowlist", "ReturnPath", "SMTPServer",
  ]);
});

step("sendMessage", async () => {
  const [sent, event] = await expectEvents("new", () => mailpit.sendMessage(sendRequest));
  assert.deepEqual(keys(sent), ["ID"]);
  state.id = sent.ID;
  if (event) {
    assert.deepEqual(keys(event), ["Data", "Type"]);
    assertSummary(event.Data);
    assert.equal(event.Data.ID, state.id);
  }
});

step("getMessageSummary", async () => {
  for (const id of [undefined, sentID()]) {
    const message = await mailpit.getMessageSummary(id);
    assertMessage(message);
    assert.equal(message.ID, sentID());
    assert.equal(message.Subject, SUBJECT);
    assert.equal(message.Attachments.length, 1);
    assert.equal(message.Inline.length, 1);
    assert.deepEqual(message.ListUnsubscribe.Links, [
      "mailto:unsubscribe@example.org",
      "https://example.org/unsubscribe",
    ]);
    state.partID = message.Attachments[0].PartID;
  }
});

step("getMessageHeaders", async () => {
  for (const id of [undefined, sentID()]) {
    const headers = await mailpit.getMessageHeaders(id);
    assert.deepEqual(keys(headers), HEADERS);
    for (const values of Object.values(headers)) assert.ok(values.every((v) => typeof v === "string"));
    assert.deepEqual(headers.Subject, [SUBJECT]);
  }
});

step("getMessageSource", async () => {
  const source = await mailpit.getMessageSource(sentID());
  assert.match(source, new RegExp(`Subject: ${SUBJECT}`));
});

step("getMessageAttachment", async () => {
  const found = await part(await mailpit.getMessageAttachment(sentID(), state.partID));
  assert.equal(found.type, "image/png");
  assert.equal(found.size, Buffer.from(PNG, "base64").length);
});

step("getAttachmentThumbnail", async () => {
  const found = await part(await mailpit.getAttachmentThumbnail(sentID(), state.partID));
  assert.equal(found.type, "image/jpeg");
  assert.ok(found.size > 0);
});

step("releaseMessage", async () => {
  const [answer, event] = await expectEvents("new", () =>
    mailpit.releaseMessage(sentID(), { To: [RELEASE_TO] }),
  );
  assert.equal(answer, "ok");
  if (event) assert.notEqual(event.Data.ID, sentID()); // the copy is a message of its own
});

step("listMessages", async () => {
  for (const listing of [await mailpit.listMessages(), await mailpit.listMessages(0, 10)]) {
    assertListing(listing);
    assert.ok(listing.messages.some((m) => m.ID === sentID()));
  }
});

step("setReadStatus", async () => {
  // Unread first: opening the message marked it read, and an update is announced for a change.
  assert.equal(await mailpit.setReadStatus({ IDs: [sentID()], Read: false }), "ok");
  const [answer, event] = await expectEvents(
    "update",
    () => mailpit.setReadStatus({ IDs: [sentID()], Read: true }),
    { match: (e) => e.Data.ID === sentID() && e.Data.Read === true },
  );
  assert.equal(answer, "ok");
  if (event) assert.deepEqual(event, { Type: "update", Data: { ID: sentID(), Read: true } });
  assert.equal(await mailpit.setReadStatus({ Search: `subject:"${SUBJECT}"`, Read: false }), "ok");
  assert.equal(await mailpit.setReadStatus(), "ok"); // every message unread
});

step("searchMessages", async () => {
  const listing = await mailpit.searchMessages({ query: `subject:"${SUBJECT}"`, start: 0, limit: 10 });
  assertListing(listing);
  assert.ok(listing.messages_count >= 1);
  assert.ok(listing.messages.every((m) => m.Subject === SUBJECT));
});

step("waitForMessage", async () => {
  if (!mailpit.waitForMessage) return; // not in every release
  const message = await mailpit.waitForMessage({ query: `subject:"${SUBJECT}"` }, { timeout: 5000, interval: 100 });
  assertMessage(message);
  const listing = await mailpit.waitForMessages({ query: "addressed:recipient@example.net", count: 1 }, { timeout: 5000, interval: 100 });
  assertListing(listing);
});

step("setTags, renameTag, getTags, deleteTag", async () => {
  const [answer, event] = await expectEvents(
    "update",
    () => mailpit.setTags({ IDs: [sentID()], Tags: ["test-tag"] }),
    { stats: false, match: (e) => e.Data.ID === sentID() && "Tags" in e.Data },
  );
  assert.equal(answer, "ok");
  if (event) assert.deepEqual(event, { Type: "update", Data: { ID: sentID(), Tags: ["test-tag"] } });
  assert.equal(await mailpit.renameTag("test-tag", "renamed tag"), "ok");
  assert.ok((await mailpit.getTags()).includes("renamed tag"));
  assert.deepEqual((await mailpit.getMessageSummary(sentID())).Tags, ["renamed tag"]);
  assert.equal(await mailpit.deleteTag("renamed tag"), "ok");
  assert.ok(!(await mailpit.getTags()).includes("renamed tag"));
  assert.equal(await mailpit.setTags({ IDs: [sentID()] }), "ok"); // no Tags: cleared
});

step("renderMessageHTML, renderMessageText", async () => {
  // As Mailpit renders it: the HTML as sent, its cid: image pointing at the part.
  const html = await mailpit.renderMessageHTML(sentID());
  const id = sentID();
  const inline = (await mailpit.getMessageSummary(id)).Inline[0].PartID;
  assert.equal(html, HTML.replace("cid:inline-image", `../api/v1/message/${id}/part/${inline}`));
  assert.ok((await mailpit.renderMessageHTML(id, 1)).includes("<b>awesome</b>"));
  assert.equal(await mailpit.renderMessageText(id), sendRequest.Text);
});

step("out of scope: html-check, link-check, sa-check, chaos", async () => {
  for (const call of [
    () => mailpit.htmlCheck(state.id),
    () => mailpit.linkCheck(state.id),
    () => mailpit.spamAssassinCheck(state.id),
    () => mailpit.getChaosTriggers(),
  ]) {
    await assert.rejects(call, /404/);
  }
});

step("deleteMessagesBySearch", async () => {
  const [answer, event] = await expectEvents("delete", () =>
    mailpit.deleteMessagesBySearch({ query: `subject:"${SUBJECT}"` }),
  );
  assert.equal(answer, "ok");
  if (event) assert.deepEqual(keys(event.Data), ["ID"]);
  const left = await mailpit.searchMessages({ query: `subject:"${SUBJECT}"` });
  assert.equal(left.messages_count, 0);
});

step("deleteMessages with IDs", async () => {
  const sent = await mailpit.sendMessage(sendRequest);
  const [answer, event] = await expectEvents("delete", () => mailpit.deleteMessages({ IDs: [sent.ID] }));
  assert.equal(answer, "ok");
  if (event) assert.deepEqual(event, { Type: "delete", Data: { ID: sent.ID } });
});

step("deleteMessages without IDs deletes every message", async () => {
  await mailpit.sendMessage(sendRequest);
  const [answer, event] = await expectEvents("truncate", () => mailpit.deleteMessages());
  assert.equal(answer, "ok");
  if (event) assert.deepEqual(event, { Type: "truncate", Data: null });
  const listing = await mailpit.listMessages();
  assert.equal(listing.total, 0);
});

if (auth) {
  step("wrong credentials: 401 Unauthorized", async () => {
    const stranger = client({ username: "invalid-user", password: "invalid-password" });
    await assert.rejects(() => stranger.getInfo(), /401 Unauthorized/);
  });
}

if (EVENTS) {
  step("onEvent('*') sees new and stats", async () => {
    const seen = [];
    const stop = mailpit.onEvent("*", (event) => seen.push(event.Type));
    const sent = await mailpit.sendMessage(sendRequest);
    const deadline = Date.now() + 10_000;
    while (!(seen.includes("new") && seen.includes("stats"))) {
      if (Date.now() > deadline) throw new Error(`events seen: ${seen.join(", ")}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    stop();
    await mailpit.deleteMessages({ IDs: [sent.ID] });
  });
}

const passed = [];
const failed = {};
for (const [name, run] of steps) {
  try {
    await run();
    passed.push(name);
  } catch (error) {
    failed[name] = String(error?.stack ?? error).slice(0, 2000);
  }
}
if (EVENTS) mailpit.disconnect();
// A websocket still reconnecting would keep Node running: exit once the result is written.
process.stdout.write(JSON.stringify({ passed, failed }) + "\n", () => process.exit(0));
