// node `ws` client for the interop tests: runs the test sequence against peerlink's
// server (ws_peer server) and exits 0 only if every check passed.
//   node node_client.js ws://127.0.0.1:PORT/echo [--ca CERT]
'use strict';
const fs = require('fs');
const http = require('http');
const https = require('https');
const WebSocket = require('ws');

const url = process.argv[2];
const caAt = process.argv.indexOf('--ca');
const ca = caAt > 0 ? fs.readFileSync(process.argv[caAt + 1]) : undefined;
let failures = 0;
function check(ok, what) {
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
    if (!ok) failures++;
}
setTimeout(() => { console.log('FAIL timeout'); process.exit(1); }, 60000).unref();

function pattern(n, text) {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = text ? 97 + (i % 26) : (i * 31 + 7) & 0xff;
    return b;
}

// A connection with queues for messages, pongs and the close.
function connect() {
    return new Promise((resolve, reject) => {
        const ws = new WebSocket(url, ca ? { ca } : {});
        const c = { ws, msgs: [], pongs: [], waiters: [], pongWaiters: [], closed: null, closeWaiters: [] };
        const push = (queue, waiters, v) => { const w = waiters.shift(); if (w) w(v); else queue.push(v); };
        ws.on('message', (data, isBinary) => push(c.msgs, c.waiters, { data: Buffer.from(data), isBinary }));
        ws.on('pong', (data) => push(c.pongs, c.pongWaiters, Buffer.from(data)));
        ws.on('close', (code, reason) => {
            c.closed = { code, reason: reason.toString() };
            for (const w of c.closeWaiters) w(c.closed);
        });
        ws.on('open', () => resolve(c));
        ws.on('error', reject);
    });
}
const next = (c) => new Promise((r) => { const m = c.msgs.shift(); if (m) r(m); else c.waiters.push(r); });
const nextPong = (c) => new Promise((r) => { const m = c.pongs.shift(); if (m) r(m); else c.pongWaiters.push(r); });
const closed = (c) => new Promise((r) => { if (c.closed) r(c.closed); else c.closeWaiters.push(r); });

function get(path) {
    const u = new URL(url);
    const mod = u.protocol === 'wss:' ? https : http;
    return new Promise((resolve, reject) => {
        mod.get({ host: u.hostname, port: u.port, path, ca }, (res) => {
            let body = '';
            res.on('data', (d) => { body += d; });
            res.on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'], body }));
        }).on('error', reject);
    });
}

(async () => {
    let c = await connect();
    for (const size of [0, 1, 125, 126, 127, 65535, 65536, 65537, 1 << 20]) {
        for (const text of [true, false]) {
            const p = pattern(size, text);
            c.ws.send(p, { binary: !text });
            const m = await next(c);
            check(m.isBinary === !text && m.data.equals(p), `echo ${text ? 'text' : 'binary'} ${size}`);
        }
    }
    for (const text of [true, false]) {
        const p = pattern(200000, text);
        for (let off = 0; off < p.length; off += 4096) {
            const end = Math.min(off + 4096, p.length);
            c.ws.send(p.subarray(off, end), { binary: !text, fin: end === p.length });
        }
        const m = await next(c);
        check(m.isBinary === !text && m.data.equals(p), `fragmented ${text ? 'text' : 'binary'} 200000 echoed whole`);
    }
    c.ws.send('frag-me:150000');
    let m = await next(c);
    check(!m.isBinary && m.data.equals(pattern(150000, true)), "server's fragmented text 150000 arrives whole");
    c.ws.ping('node-ping');
    const pong = await nextPong(c);
    check(pong.toString() === 'node-ping', 'pong for our ping');
    c.ws.send('ping-me:srv');
    m = await next(c);
    check(m.data.toString() === 'got-pong:srv', `server's ping answered (got '${m.data.toString()}')`);

    const status = await get('/status');
    let ok = false;
    try { ok = status.status === 200 && JSON.parse(status.body).ok === true; } catch (e) { ok = false; }
    check(ok && status.type === 'application/json', `GET /status on the same port (${status.status} ${status.body})`);

    c.ws.close(4002, 'client bye \u2713');
    const cl = await closed(c);
    check(cl.code === 4002, `close handshake: server echoed 4002 (got ${cl.code})`);

    c = await connect();
    c.ws.send('close-me');
    const cl2 = await closed(c);
    check(cl2.code === 4003 && cl2.reason === 'server bye', `server-initiated close 4003 'server bye' (got ${cl2.code} '${cl2.reason}')`);

    console.log(`${failures} failure(s)`);
    process.exit(failures ? 1 : 0);
})().catch((e) => { console.log(`FAIL exception ${e.stack}`); process.exit(1); });
