import { describe, expect, it } from 'vitest';
import { AppError } from '../../shared/errors.js';
import { PROBLEM_CONTENT_TYPE, problemFromError, statusByCode } from '../../shared/http.js';

describe('problemFromError', () => {
  it('explains a caller error with its status, code and the fields at fault', () => {
    const error = new AppError('validation_failed', 'Invalid body: body.databaseId (Invalid UUID)', {
      fieldErrors: [{ field: 'body.databaseId', message: 'Invalid UUID' }],
    });
    const response = problemFromError(error, 'inv-1');
    expect(response.status).toBe(400);
    expect(response.headers['content-type']).toBe(PROBLEM_CONTENT_TYPE);
    expect(response.jsonBody).toMatchObject({
      status: 400,
      code: 'validation_failed',
      detail: 'Invalid body: body.databaseId (Invalid UUID)',
      errors: [{ field: 'body.databaseId', message: 'Invalid UUID' }],
      instance: 'inv-1',
    });
    expect(response.jsonBody.type).toMatch(/^https:\/\//);
  });

  it('asks for a bearer token on 401 and passes conflict details through', () => {
    expect(problemFromError(new AppError('unauthenticated', 'token expired'), 'i').headers['www-authenticate']).toBe('Bearer');
    const conflict = problemFromError(new AppError('conflict', 'job is Cancelled', { details: { jobStatus: 'Cancelled' } }), 'i');
    expect(conflict.status).toBe(409);
    expect(conflict.jsonBody.jobStatus).toBe('Cancelled');
  });

  it('never shows the internals of a server-side error: message, field errors and details stay in the logs', () => {
    const misconfigured = new AppError('config_invalid', 'Invalid settings: SQL_SERVER is required but not set', {
      fieldErrors: [{ field: 'SQL_SERVER', message: 'is required but not set' }],
      details: { secretHint: 'x' },
    });
    const response = problemFromError(misconfigured, 'inv-2');
    expect(response.status).toBe(500);
    expect(JSON.stringify(response.jsonBody)).not.toMatch(/SQL_SERVER|secretHint/);
    expect(response.jsonBody.detail).toContain('inv-2');

    const crash = problemFromError(new TypeError("Cannot read properties of undefined (reading 'id')"), 'inv-3');
    expect(crash.status).toBe(500);
    expect(JSON.stringify(crash.jsonBody)).not.toContain('Cannot read');
  });

  it('says what a dependency outage is, with 503', () => {
    const response = problemFromError(new AppError('dependency_unavailable', 'Blob Storage did not answer'), 'i');
    expect(response.status).toBe(503);
    expect(response.jsonBody.detail).toBe('Blob Storage did not answer');
  });

  it('maps every error code to a 4xx or 5xx status', () => {
    for (const status of Object.values(statusByCode)) expect(status).toBeGreaterThanOrEqual(400);
  });
});
