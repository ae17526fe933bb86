// node `ws` echo server for the interop tests; the same echo protocol as ws_peer's
// server (see ws_peer.cpp). Prints "PORT <n>" once listening on 127.0.0.1, and
// "close <code> <reason>" for every close it receives.
//   node node_server.js [--tls CERT KEY]
'use strict';
const fs = require('fs');
const http = require('http');
const https = require('https');
const { WebSocketServer } = require('ws');

const args = process.argv.slice(2);
const tlsAt = args.indexOf('--tls');
const server = tlsAt >= 0
    ? https.createServer({ cert: fs.readFileSync(args[tlsAt + 1]), key: fs.readFileSync(args[tlsAt + 2]) })
    : http.createServer();
const wss = new WebSocketServer({ server, maxPayload: 64 * 1024 * 1024 });

function pattern(n) {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = 97 + (i % 26);
    return b;
}

wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => {
        const text = isBinary ? null : data.toString();
        if (text !== null && text.startsWith('frag-me:')) {
            const body = pattern(parseInt(text.slice(8), 10));
            for (let off = 0; off < body.length; off += 1000) {
                const end = Math.min(off + 1000, body.length);
                ws.send(body.subarray(off, end), { binary: false, fin: end === body.length });
            }
        } else if (text !== null && text.startsWith('ping-me:')) {
            ws.ping(text.slice(8));
        } else if (text === 'close-me') {
            ws.close(4003, 'server bye');
        } else {
            ws.send(data, { binary: isBinary });
        }
    });
    ws.on('pong', (data) => ws.send('got-pong:' + data.toString()));
    ws.on('close', (code, reason) => console.log(`close ${code} ${reason.toString()}`));
    ws.on('error', (e) => console.log(`error ${e.message}`));
});

server.listen(0, '127.0.0.1', () => console.log(`PORT ${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));
setTimeout(() => { console.log('node server watchdog'); process.exit(3); }, 120000).unref();
