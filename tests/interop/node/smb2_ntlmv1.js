// An unmodified NTLMv1-only SMB2 client (@marsaud/smb2, whose `ntlm` dependency sends
// LM + NTLMv1 responses): lists a share, prints "OK <n>" or "ERR <code> <message>".
// Usage: node smb2_ntlmv1.js HOST PORT SHARE USER PASSWORD
'use strict';
const SMB2 = require('@marsaud/smb2');

const [host, port, share, username, password] = process.argv.slice(2);
const client = new SMB2({
  share: `\\\\${host}\\${share}`, domain: '', username, password,
  port: Number(port), autoCloseTimeout: 0,
});
const timer = setTimeout(() => { console.log('ERR TIMEOUT'); process.exit(3); }, 15000);
client.readdir('', (err, files) => {
  clearTimeout(timer);
  if (err) {
    console.log(`ERR ${err.code || ''} ${err.message}`);
    process.exitCode = 1;
  } else {
    console.log(`OK ${files.length}`);
  }
  try { client.disconnect(); } catch (e) { /* already closed */ }
  setTimeout(() => process.exit(process.exitCode || 0), 200);
});
