// A sync client in JavaScript written from docs/protocol.md alone (no code shared with the Rust core),
// run by the test command against a real server (tests/tests/e2e/js_client.rs drives it). It enrolls,
// syncs the four documents from empty, clips an offer and opens a request (the `requests` map made
// with the shared change), and is refused when it makes a rival map. It measures what the document
// promises: "nothing changed" is 96 body bytes in one round trip, a primed local edit one round trip,
// and shows that priming needs all three sync-state fields.
//
// Environment: LOYALTY_SERVER (base URL), LOYALTY_ACTIVATION_CODE, LOYALTY_OFFER_ID, and
// LOYALTY_JS_MODULES (the node_modules folder that holds @automerge/automerge, installed from this
// folder's package-lock.json). Prints one JSON object with the results on stdout.

import { createRequire } from "node:module";
import { join } from "node:path";
import { webcrypto, generateKeyPairSync } from "node:crypto";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const SERVER = env("LOYALTY_SERVER");
const require = createRequire(join(env("LOYALTY_JS_MODULES"), "loyalty-js-client.cjs"));
const Automerge = require("@automerge/automerge");

const hex = (bytes) => Buffer.from(bytes).toString("hex");
const fromHex = (text) => Uint8Array.from(Buffer.from(text, "hex"));
const str = (s) => new Automerge.ImmutableString(s);

// §3, member: the change that makes the `requests` map, and its hash.
const REQUESTS_CHANGE = fromHex(
  "856f4a833c4075c1015e013e5ae8c0c08e7c15c8a4f2e5e1547b508bf33df3399f73ed73b65fea5fc2dadc" +
    "1b6c6f79616c74792d6d656d6265722d72657175657374732d6d6170010800000005150a34014202560270" +
    "027f087265717565737473017f007f007f00",
);
const REQUESTS_HASH = "3c4075c131455309d421f725318c7f53d29df6d03202eec4a4d516b640f7cb28";
const REQUESTS_ACTOR = hex(Buffer.from("loyalty-member-requests-map"));

// §2, framing.
function uleb(n) {
  const out = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

function encodeRequest(entries) {
  const out = [0x01, entries.length];
  for (const e of entries) {
    out.push(e.doc, ...e.digest);
    const msg = e.message ?? new Uint8Array(0);
    out.push(...uleb(msg.length), ...msg);
  }
  return Uint8Array.from(out);
}

function decodeResponse(bytes) {
  let at = 0;
  const take = (n) => {
    if (at + n > bytes.length) throw new Error("response ends early");
    const s = bytes.subarray(at, at + n);
    at += n;
    return s;
  };
  const readUleb = () => {
    let n = 0, shift = 1;
    for (;;) {
      const b = take(1)[0];
      n += (b & 0x7f) * shift;
      if ((b & 0x80) === 0) return n;
      shift *= 128;
    }
  };
  if (take(1)[0] !== 1) throw new Error("unknown response version");
  const serverTime = Number(Buffer.from(take(8)).readBigInt64BE());
  const count = take(1)[0];
  const entries = [];
  for (let i = 0; i < count; i++) {
    const doc = take(1)[0], status = take(1)[0], digest = take(8);
    const payload = take(readUleb());
    entries.push({ doc, status, digest, payload });
  }
  if (at !== bytes.length) throw new Error("trailing bytes in the response");
  return { serverTime, entries };
}

// §2, heads digest.
async function digest(doc) {
  const heads = Automerge.getHeads(doc).map(fromHex);
  heads.sort((a, b) => Buffer.compare(a, b));
  const all = new Uint8Array(heads.length * 32);
  heads.forEach((h, i) => all.set(h, i * 32));
  return new Uint8Array(await webcrypto.subtle.digest("SHA-256", all)).slice(0, 8);
}

const sameBytes = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
const sameHeads = (a, b) => a.length === b.length && [...a].sort().join() === [...b].sort().join();

// §2, one round trip for a local edit: the fields priming sets. `fields` picks some of them, to
// show that fewer do not do it.
const PRIME_ALL = ["theirHeads", "theirNeed", "theirHave"];
function prime(state, fields = PRIME_ALL) {
  const primed = { ...state };
  if (fields.includes("theirHeads")) primed.theirHeads = state.sharedHeads;
  if (fields.includes("theirNeed")) primed.theirNeed = [];
  if (fields.includes("theirHave")) {
    primed.theirHave = [{ lastSync: state.sharedHeads, bloom: new Uint8Array(0) }];
  }
  return primed;
}

// A device: its credentials, its four documents and their persisted sync states.
const device = {
  auth: null,
  memberId: null,
  docs: [0, 1, 2, 3].map(() => Automerge.init()),
  states: [0, 1, 2, 3].map(() => Automerge.encodeSyncState(Automerge.initSyncState())),
};

async function post(body) {
  const response = await fetch(`${SERVER}/v1/members/${device.memberId}/sync`, {
    method: "POST",
    headers: { authorization: device.auth, "content-type": "application/vnd.loyalty.sync.v1" },
    body,
  });
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (response.status !== 200) throw new Error(`sync: ${response.status} ${Buffer.from(bytes)}`);
  return bytes;
}

// §2, the client loop, counting round trips and body bytes. `primeFields` picks the priming.
async function sync(kinds = [0, 1, 2, 3], primeFields = PRIME_ALL) {
  const states = device.states.map((s) => Automerge.decodeSyncState(s));
  const report = { roundTrips: 0, sent: 0, received: 0, rejected: [] };
  let pending = [...kinds], first = true;
  for (let round = 0; pending.length > 0; round++) {
    if (round === 12) throw new Error("sync did not settle");
    const entries = [];
    for (const k of pending) {
      let msg = null;
      const local = !sameHeads(Automerge.getHeads(device.docs[k]), states[k].sharedHeads);
      if (!first || local) {
        const state = first ? prime(states[k], primeFields) : states[k];
        [states[k], msg] = Automerge.generateSyncMessage(device.docs[k], state);
      }
      entries.push({ doc: k, digest: await digest(device.docs[k]), message: msg });
    }
    first = false;
    const body = encodeRequest(entries);
    const answer = await post(body);
    report.roundTrips++;
    report.sent += body.length;
    report.received += answer.length;
    pending = [];
    for (const e of decodeResponse(answer).entries) {
      if (e.status === 2) {
        report.rejected.push({ doc: e.doc, ...JSON.parse(Buffer.from(e.payload).toString("utf8")) });
        continue;
      }
      if (e.status === 1 && e.payload.length > 0) {
        [device.docs[e.doc], states[e.doc]] = Automerge.receiveSyncMessage(
          device.docs[e.doc], states[e.doc], e.payload);
      }
      if (sameBytes(await digest(device.docs[e.doc]), e.digest)) {
        // Settled: both sides are at these heads.
        states[e.doc] = { ...states[e.doc], sharedHeads: Automerge.getHeads(device.docs[e.doc]) };
      } else {
        pending.push(e.doc);
      }
    }
  }
  device.states = states.map((s) => Automerge.encodeSyncState(s));
  return report;
}

function publicKeyHex() {
  const { publicKey } = generateKeyPairSync("ed25519");
  return hex(Buffer.from(publicKey.export({ format: "jwk" }).x, "base64url"));
}

async function enroll() {
  const response = await fetch(`${SERVER}/v1/enroll`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      activation_code: env("LOYALTY_ACTIVATION_CODE"),
      device_name: "js-client",
      public_key: publicKeyHex(),
    }),
  });
  const body = await response.json();
  if (response.status !== 200) throw new Error(`enroll: ${JSON.stringify(body)}`);
  device.memberId = body.member_id;
  device.auth = `Bearer ${body.device_id}.${body.device_secret}`;
}

const MEMBER = 3, OFFERS = 1;
const editMember = (fn) => { device.docs[MEMBER] = Automerge.change(device.docs[MEMBER], fn); };

async function main() {
  const out = {};
  await enroll();
  out.firstSync = await sync();
  out.offerSeen = Object.keys(device.docs[OFFERS].offers ?? {}).includes(env("LOYALTY_OFFER_ID"));
  out.nothingChanged = await sync();

  // Clip the offer: one round trip with full priming.
  editMember((d) => {
    d.activations[env("LOYALTY_OFFER_ID")] = { at: new Date(), device: str("js-client") };
  });
  out.localEdit = await sync();
  out.nothingChangedAfterEdit = await sync();

  // The same kind of edit with fewer of the priming fields set: round trips for each choice.
  out.priming = {};
  const choices = {
    none: [], theirHeads: ["theirHeads"], theirHave: ["theirHave"], theirNeed: ["theirNeed"],
    theirHeadsAndHave: ["theirHeads", "theirHave"], theirHeadsAndNeed: ["theirHeads", "theirNeed"],
    theirHaveAndNeed: ["theirHave", "theirNeed"], all: PRIME_ALL,
  };
  for (const [name, fields] of Object.entries(choices)) {
    editMember((d) => { d.preferences[`priming_${name}`] = str("on"); });
    out.priming[name] = (await sync([MEMBER], fields)).roundTrips;
  }

  // A rival `requests` map (what `d.requests = {}` makes) is refused; the copy is dropped.
  const kept = { doc: Automerge.clone(device.docs[MEMBER]), state: device.states[MEMBER] };
  editMember((d) => { d.requests = {}; });
  out.rival = await sync([MEMBER]);
  device.docs[MEMBER] = kept.doc;
  device.states[MEMBER] = kept.state;

  // The shared change, made with the library as §3 describes, is byte for byte the documented one.
  const firstChange = Automerge.decodeChange(Automerge.getAllChanges(device.docs[MEMBER])[0]);
  const fork = Automerge.clone(Automerge.view(device.docs[MEMBER], [firstChange.hash]), {
    actor: REQUESTS_ACTOR,
  });
  const made = Automerge.getLastLocalChange(
    Automerge.change(fork, { time: 0 }, (d) => { d.requests = {}; }));
  out.sharedChangeMadeMatches = sameBytes(made, REQUESTS_CHANGE);
  out.sharedChangeHash = Automerge.decodeChange(REQUESTS_CHANGE).hash;

  // Apply the documented bytes and open a request in the map.
  [device.docs[MEMBER]] = Automerge.applyChanges(device.docs[MEMBER], [REQUESTS_CHANGE]);
  editMember((d) => {
    d.requests.req_js = {
      kind: str("question"), subject: str("Opening hours?"), body: str("On Sundays?"),
      at: new Date(), followups: {},
    };
  });
  out.sharedRequest = await sync([MEMBER]);
  out.expectedSharedHash = REQUESTS_HASH;
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e.stack ?? String(e));
  process.exit(1);
});
