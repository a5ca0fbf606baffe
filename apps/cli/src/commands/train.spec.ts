import { modelsV1 } from '@aether/proto';
import { startRequest } from './train';

describe('startRequest', () => {
  it('turns the template and options into StartTraining: datasets, hyperparameters, resources, labels', () => {
    const req = startRequest(
      'trainingTemplates/reference-mlp',
      {
        dataset: ['artifacts/01jc7v0m4k3h2g1f0e9d8c7b6a'],
        hparamsFile: 'hp.json',
        hparam: [
          ['lr', 0.01],
          ['optimizer', 'adam'],
        ],
        cpu: 2000,
        memory: 1024n ** 3n,
        gpus: 1,
        timeout: 600_000,
        registerModel: true,
        label: { team: 'ml' },
        name: 'first try',
        idempotencyKey: 'k1',
      },
      () => '{"epochs": 3, "lr": 0.1}',
    );
    expect(req).toEqual(
      modelsV1.StartTrainingRequest.fromPartial({
        spec: {
          template: 'reference-mlp',
          datasets: ['artifacts/01jc7v0m4k3h2g1f0e9d8c7b6a'],
          hyperparameters: { epochs: 3, lr: 0.01, optimizer: 'adam' },
          resources: {
            cpuMillicores: 2000,
            memoryBytes: 1024n ** 3n,
            gpuCount: 1,
            timeout: { seconds: 600n, nanos: 0 },
          },
          registerModel: true,
        },
        labels: { team: 'ml' },
        displayName: 'first try',
        idempotencyKey: 'k1',
      }),
    );
    // It encodes: the hyperparameters are a Struct on the wire.
    const back = modelsV1.StartTrainingRequest.decode(modelsV1.StartTrainingRequest.encode(req).finish());
    expect(back.spec!.hyperparameters).toEqual({ epochs: 3, lr: 0.01, optimizer: 'adam' });
  });

  it("leaves resources and hyperparameters unset for the template's defaults", () => {
    const req = startRequest('reference-mlp', { dataset: ['artifacts/a'] });
    expect(req.spec!.resources).toBeUndefined();
    expect(req.spec!.hyperparameters).toBeUndefined();
  });

  it('names a --hparams-file it cannot read', () => {
    expect(() =>
      startRequest('t', { dataset: ['artifacts/a'], hparamsFile: 'nope.json' }, () => {
        throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
      }),
    ).toThrow('cannot read --hparams-file nope.json: ENOENT');
  });
});
