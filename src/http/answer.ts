/**
 * Writing an answer straight onto Node's response. Express's `res.send` re-parses the content
 * type to add a charset, checks request freshness and may hash the body, on every call; the
 * service's answers are small strings of a fixed type, so the hot routes write them directly
 * (Node adds the Content-Length itself when the whole body goes out in one `end`).
 */
import type { Response } from 'express';

export const JSON_TYPE = 'application/json; charset=utf-8';
export const TEXT_TYPE = 'text/plain; charset=utf-8';

export function sendAnswer(res: Response, status: number, contentType: string, body: string): void {
  res.statusCode = status;
  res.setHeader('content-type', contentType);
  res.end(body);
}
