// Bad input from a raw socket against peerlink's server (ws_peer server --max-message N):
// each case must get the right close code (or HTTP status) and the connection closed,
// and afterwards a normal `ws` client must still be served.
//   node node_raw.js PORT MAX_MESSAGE
'use strict';
const net = require('net');
const crypto = require('crypto');
const WebSocket = require('ws');

const port = parseInt(process.argv[2], 10);
const maxMessage = parseInt(process.argv[3], 10);
let failures = 0;
function check(ok, what) {
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
    if (!ok) failures++;
}
setTimeout(() => { console.log('FAIL timeout'); process.exit(1); }, 60000).unref();

const upgrade = 'GET /raw HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`;

// A client frame: masked unless told otherwise; `length` may announce more than is sent.
function frame(opcode, payload, { fin = true, rsv = 0, mask = true, length } = {}) {
    const n = length === undefined ? payload.length : length;
    const head = [((fin ? 0x80 : 0) | (rsv << 4) | opcode)];
    const m = mask ? 0x80 : 0;
    let ext = Buffer.alloc(0);
    if (n < 126) head.push(m | n);
    else if (n <= 0xffff) { head.push(m | 126); ext = Buffer.alloc(2); ext.writeUInt16BE(n); }
    else { head.push(m | 127); ext = Buffer.alloc(8); ext.writeBigUInt64BE(BigInt(n)); }
    if (!mask) return Buffer.concat([Buffer.from(head), ext, payload]);
    const key = crypto.randomBytes(4);
    const body = Buffer.from(payload);
    for (let i = 0; i < body.length; i++) body[i] ^= key[i % 4];
    return Buffer.concat([Buffer.from(head), ext, key, body]);
}

// Sends `request` (and `after` once the 101 is in), collects everything until the server
// closes; returns the HTTP status and the first close frame's code.
function session(request, after) {
    return new Promise((resolve) => {
        const sock = net.connect(port, '127.0.0.1');
        let buf = Buffer.alloc(0);
        let headEnd = -1;
        sock.on('connect', () => sock.write(request));
        sock.on('data', (d) => {
            buf = Buffer.concat([buf, d]);
            if (headEnd < 0) {
                headEnd = buf.indexOf('\r\n\r\n');
                if (headEnd >= 0 && after && buf.toString('latin1', 0, 12) === 'HTTP/1.1 101') sock.write(after);
            }
        });
        sock.on('error', () => {});
        sock.on('close', () => {
            const status = parseInt(buf.toString('latin1', 9, 12), 10);
            let code = null;
            const frames = headEnd >= 0 ? buf.subarray(headEnd + 4) : Buffer.alloc(0);
            if (frames.length >= 4 && frames[0] === 0x88) code = frames.readUInt16BE(2);
            resolve({ status, code });
        });
    });
}

(async () => {
    const cases = [
        ['oversized message (header announces max+1)', frame(2, Buffer.alloc(100), { length: maxMessage + 1 }), 1009],
        ['oversized message in fragments', Buffer.concat([
            frame(2, Buffer.alloc(maxMessage - 10), { fin: false }), frame(0, Buffer.alloc(11))]), 1009],
        ['RSV1 without an extension', frame(1, Buffer.from('hi'), { rsv: 4 }), 1002],
        ['unmasked client frame', frame(1, Buffer.from('hi'), { mask: false }), 1002],
        ['reserved opcode 3', frame(3, Buffer.from('hi')), 1002],
        ['ping of 126 bytes', frame(9, Buffer.alloc(126)), 1002],
        ['continuation without a start', frame(0, Buffer.from('hi')), 1002],
        ['text that is not UTF-8', frame(1, Buffer.from([0x68, 0xff, 0x69])), 1007],
        ['close code 1005 on the wire', frame(8, Buffer.from([0x03, 0xed])), 1002],
    ];
    for (const [what, bytes, code] of cases) {
        const r = await session(upgrade, bytes);
        check(r.status === 101 && r.code === code, `${what}: close ${code} (got HTTP ${r.status}, close ${r.code})`);
    }
    let r = await session('BLAH\r\n\r\n');
    check(r.status === 400, `garbage request: HTTP 400 (got ${r.status})`);
    r = await session(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(10000)}\r\n\r\n`);
    check(r.status === 431, `10 KB header: HTTP 431 (got ${r.status})`);
    r = await session(upgrade.replace('Version: 13', 'Version: 8'));
    check(r.status === 426, `version 8: HTTP 426 (got ${r.status})`);

    // The server still serves a well-behaved client.
    const ws = new WebSocket(`ws://127.0.0.1:${port}/echo`);
    const echoed = await new Promise((resolve, reject) => {
        ws.on('open', () => ws.send('still alive'));
        ws.on('message', (d) => { resolve(d.toString()); ws.close(1000); });
        ws.on('error', reject);
    });
    check(echoed === 'still alive', 'a normal client is still served');
    console.log(`${failures} failure(s)`);
    process.exit(failures ? 1 : 0);
})().catch((e) => { console.log(`FAIL exception ${e.stack}`); process.exit(1); });
