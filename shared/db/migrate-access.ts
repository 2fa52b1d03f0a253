/**
 * Why the machine running `npm run db:migrate` cannot reach Azure SQL, in words that say what to do. Login
 * errors reach us without their number (tedious builds them from the message alone), so the server's own
 * message text is what identifies them here.
 */
import { errorMessage } from '../errors.js';
import { someCause } from './repository.js';

const messageOf = (error: unknown): string => {
  const parts: string[] = [];
  someCause(error, (candidate) => {
    if (typeof candidate.message === 'string') parts.push(candidate.message);
    return false;
  });
  return parts.join(' | ') || errorMessage(error);
};

/** Advice when the database is out of this machine's reach (firewall, private endpoint, blocked port); undefined otherwise. */
export function unreachableAdvice(error: unknown): string | undefined {
  const message = messageOf(error);
  const ip = /Client with IP address '([^']+)' is not allowed/i.exec(message)?.[1];
  if (ip) {
    return (
      `The SQL firewall does not admit this machine (${ip}). To migrate from here: ` +
      `azd env set SQL_CLIENT_IP_ADDRESS ${ip} && azd provision (the hook runs again), or run npm run db:migrate from inside Azure.`
    );
  }
  if (/Deny Public Network Access/i.test(message)) {
    return 'The server accepts private-endpoint connections only: run npm run db:migrate from a machine in the virtual network.';
  }
  if (someCause(error, (c) => c.code === 'ESOCKET' || c.code === 'ETIMEOUT')) {
    return `No connection to the SQL server (${message}): outbound TCP 1433 may be blocked here; run npm run db:migrate from a network that allows it.`;
  }
  return undefined;
}
