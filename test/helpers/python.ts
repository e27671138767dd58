import { existsSync } from 'node:fs';

/** Debian's python3 (what CI installs python3-numpy and python3-opencv for), else the one on PATH. */
export const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
