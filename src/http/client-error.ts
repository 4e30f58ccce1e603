import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';

// What Node's HTTP parser reports before a request reaches a route: the status it deserves and
// the reason we give. Anything else from the parser (HPE_INVALID_*) is a malformed request.
const ANSWERS: Record<string, [number, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'request line and headers are larger than 16 KiB'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'request not received in time'],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [413, 'chunk extensions are too large'],
};

interface ParserError extends Error {
  code?: string;
  /** llhttp's explanation, e.g. "Invalid method encountered". */
  reason?: unknown;
}

/**
 * The server's 'clientError' handler. Node answers these itself with a bare status line; this
 * gives them the JSON body every other error has, then closes the connection: after a parse error
 * or a timeout the rest of the byte stream cannot be trusted.
 */
export function answerClientError(error: ParserError, socket: Duplex): void {
  const response = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  // A reset or a half-sent answer leaves nothing to say.
  if (error.code === 'ECONNRESET' || !socket.writable || response?.headersSent) {
    socket.destroy();
    return;
  }
  const [status, message] = ANSWERS[error.code ?? ''] ?? [400, badRequestMessage(error)];
  const body = JSON.stringify({ error: message });
  socket.write(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
      `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
  // destroySoon, not destroy: the answer must be flushed before the socket goes.
  const { destroySoon } = socket as Duplex & { destroySoon?: () => void };
  if (typeof destroySoon === 'function') destroySoon.call(socket);
  else socket.destroy();
}

function badRequestMessage(error: ParserError): string {
  return typeof error.reason === 'string' ? `malformed request: ${error.reason.slice(0, 100)}` : 'malformed request';
}
