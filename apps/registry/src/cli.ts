// `npm run registry -- <command>`: the registry's command line (the commands are in cli-commands.ts).
import 'reflect-metadata';
import { runCli } from './cli-commands.js';

runCli(process.argv.slice(2), { env: process.env, out: (line) => console.log(line), err: (line) => console.error(line) }).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
