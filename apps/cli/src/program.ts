import { Command } from 'commander';
import { defaultClientConfigPath } from '@aether/config';
import { artifactsCommand } from './commands/artifacts';
import { auditCommand } from './commands/audit';
import { doctorCommand } from './commands/doctor';
import { eventsCommand } from './commands/events';
import { healthCommand } from './commands/health';
import { intentCommand } from './commands/intent';
import { jobsCommand } from './commands/jobs';
import { memoryCommand } from './commands/memory';
import { metricsCommand } from './commands/metrics';
import { modelsCommand } from './commands/models';
import { policyCommand } from './commands/policy';
import { pkiCommand } from './commands/pki';
import { tokenCommand } from './commands/token';
import { topCommand } from './commands/top';
import { trainCommand } from './commands/train';

/** The `aether` command line: one subcommand per capability, human output by default, --json for scripts. */
export function buildProgram(): Command {
  const program = new Command('aether')
    .description('Command line for Aether: a local substrate for AI agents (aetherd, aurorad, cfcd).')
    .option(
      '-c, --config <file>',
      'client configuration (sockets, CA, client certificate)',
      defaultClientConfigPath(),
    )
    .showHelpAfterError()
    .addHelpText(
      'after',
      '\nThe client configuration defaults to $AETHER_CONFIG, else ~/.aether/config.yaml; certificates default to ~/.aether/pki/.',
    );
  program.addCommand(healthCommand());
  program.addCommand(doctorCommand());
  program.addCommand(jobsCommand());
  program.addCommand(artifactsCommand());
  program.addCommand(memoryCommand());
  program.addCommand(eventsCommand());
  program.addCommand(intentCommand());
  program.addCommand(modelsCommand());
  program.addCommand(trainCommand());
  program.addCommand(metricsCommand());
  program.addCommand(topCommand());
  program.addCommand(pkiCommand());
  program.addCommand(tokenCommand());
  program.addCommand(policyCommand());
  program.addCommand(auditCommand());
  return program;
}
