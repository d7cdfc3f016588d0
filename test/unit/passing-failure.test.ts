import { describe, expect, it } from 'vitest';
import { errors } from '@nats-io/transport-node';
import { ClosedError, InvalidArgumentError, NoRespondersError, TimeoutError } from '../../src/errors.js';
import { failureFields, isClosingFailure, isPassingFailure, isRefusedPermission } from '../../src/nats/passing-failure.js';

describe('routine NATS failures', () => {
  it('tells a server away for now from a connection closing and from anything else', () => {
    expect(isPassingFailure(new TimeoutError('request timed out'))).toBe(true);
    expect(isPassingFailure(new NoRespondersError('no responders'))).toBe(true);
    expect(isPassingFailure(new errors.RequestError('request failed', { cause: new errors.TimeoutError() }))).toBe(true);
    expect(isPassingFailure(new ClosedError('bus closed'))).toBe(false);
    expect(isClosingFailure(new ClosedError('bus closed before a reply arrived'))).toBe(true);
    expect(isClosingFailure(new errors.ClosedConnectionError())).toBe(true);
    expect(isClosingFailure(new errors.RequestError('connection closed'))).toBe(true);
    expect(isPassingFailure(new InvalidArgumentError('bad'))).toBe(false);
    expect(isClosingFailure(new TypeError('x is undefined'))).toBe(false);
    expect(isRefusedPermission(new errors.RequestError('failed', { cause: new errors.PermissionViolationError('Permissions Violation for Publish to "x"', 'publish', 'x') }))).toBe(true);
    expect(isRefusedPermission(new TimeoutError('request timed out'))).toBe(false);
  });

  it('logs a routine failure in one line, anything else with its stack', () => {
    expect(failureFields(new ClosedError('bus closed before a reply arrived'))).toEqual({ reason: 'ClosedError: bus closed before a reply arrived' });
    const bug = new TypeError('x is undefined');
    expect(failureFields(bug)).toEqual({ err: bug });
  });
});
