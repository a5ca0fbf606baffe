import { status } from '@grpc/grpc-js';
import { InvalidArgumentError, RpcError, Violations } from './errors';

describe('Violations', () => {
  const violationsOf = (fn: () => void): readonly { field: string }[] => {
    try {
      fn();
    } catch (err) {
      if (err instanceof InvalidArgumentError) return err.fieldViolations;
      throw err;
    }
    return [];
  };

  it('accepts the AIP pagination defaults and tokens the server issued', () => {
    expect(violationsOf(() => new Violations().page({ pageSize: 0, pageToken: '' }).throwIfAny())).toEqual(
      [],
    );
    expect(
      violationsOf(() => new Violations().page({ pageSize: 1000, pageToken: '200' }).throwIfAny()),
    ).toEqual([]);
  });

  it('names page_size and page_token when they are out of range or forged', () => {
    const v = violationsOf(() => new Violations().page({ pageSize: -1, pageToken: 'abc' }).throwIfAny());
    expect(v.map((x) => x.field)).toEqual(['page_size', 'page_token']);
    expect(
      violationsOf(() => new Violations().page({ pageSize: 51, pageToken: '' }, 50).throwIfAny()),
    ).toHaveLength(1);
  });

  it('round-trips field violations through the wire form', () => {
    const err = new InvalidArgumentError([{ field: 'spec.argv', description: 'must not be empty' }]);
    const back = RpcError.from(Object.assign(new Error(err.message), err.toServiceError()));
    expect(back).toMatchObject({ code: status.INVALID_ARGUMENT, reason: 'INVALID_ARGUMENT' });
    expect(back.fieldViolations).toEqual([{ field: 'spec.argv', description: 'must not be empty' }]);
  });
});
