// The process launcher's helper (see ChildLauncher): a small Node process that starts runtime commands
// and monitors for aetherd, so that forking never copies aetherd's page tables or blocks its event loop.
// It serves requests from its parent over the IPC channel and exits when the parent goes away.
import { inProcessLauncher, type ExecOptions } from './launcher';

type Request =
  | { id: number; op: 'exec'; file: string; args: string[]; opts: ExecOptions }
  | { id: number; op: 'monitor'; file: string; args: string[]; env: Record<string, string> };

process.on('message', (req: Request) => {
  const done =
    req.op === 'exec'
      ? inProcessLauncher.exec(req.file, req.args, req.opts)
      : inProcessLauncher.monitor(req.file, req.args, req.env);
  void done.then((result) => process.send?.({ id: req.id, result }));
});
process.on('disconnect', () => process.exit(0));
