import { execFileSync } from 'node:child_process';

/**
 * Skips for missing prerequisites, with the rules of the project (test/README.md):
 * - an installable prerequisite (a Debian package such as python3-opencv, mosquitto, postgresql,
 *   systemd-analyze, or the OpenCV addon that libopencv-dev lets CMake build): skipped with a
 *   printed reason on a developer machine, but under CI=true `skipForPackage` throws, so the file
 *   fails: .ci/run installs all of them, and a skip there would hide a broken install;
 * - accelerator hardware (Jetson, Hailo-8, Myriad): `skipForHardware` skips everywhere it is
 *   absent, CI included, with a reason.
 *
 * Use: `const why = missingCommand('mosquitto'); describe.skipIf(skipForPackage(why))(...)`.
 */
export function skipForPackage(reason: string | null): boolean {
  if (reason === null) return false;
  if (process.env.CI === 'true') {
    throw new Error(`CI=true and a prerequisite is missing (.ci/run should have installed it): ${reason}`);
  }
  console.warn(`[skip] ${reason}`);
  return true;
}

export function skipForHardware(reason: string | null): boolean {
  if (reason === null) return false;
  console.warn(`[skip: hardware absent] ${reason}`);
  return true;
}

/** null when the command runs, otherwise why not. */
export function missingCommand(cmd: string, args: string[] = ['--version']): string | null {
  try {
    execFileSync(cmd, args, { stdio: 'ignore', timeout: 20_000 });
    return null;
  } catch (err) {
    return `${cmd} is not available (${(err as Error).message.split('\n')[0]})`;
  }
}

export function missingPythonModule(mod: string): string | null {
  try {
    execFileSync('python3', ['-c', `import ${mod}`], { stdio: 'ignore', timeout: 20_000 });
    return null;
  } catch {
    return `python3 module ${mod} is not available (apt-get install python3-opencv)`;
  }
}
