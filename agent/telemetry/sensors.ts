import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TemperatureReading } from '../../protocol/telemetry.js';

/**
 * Temperatures read straight from sysfs with async reads. systeminformation's cpuTemperature()
 * runs `cat /sys/class/thermal/...` through execSync, which blocks the event loop (and so every
 * in-flight inference) for the length of a process spawn; reading the same files here costs a
 * few async reads. On a Jetson the thermal zones are the useful ones (CPU-therm, GPU-therm,
 * AO-therm, PMIC-Die...); on a PC they are often absent and hwmon has the sensors.
 */
export interface SensorRoots {
  thermal: string;
  hwmon: string;
}
export const DEFAULT_SENSOR_ROOTS: SensorRoots = { thermal: '/sys/class/thermal', hwmon: '/sys/class/hwmon' };

async function text(path: string): Promise<string | null> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return null;
  }
}

// sysfs reports millidegrees Celsius. Values outside what silicon can report are sensor faults
// (disabled Jetson zones read -40000 or 100000+ on some L4T releases) and are left out.
function celsius(raw: string | null): number | null {
  if (raw === null || !/^-?\d+$/.test(raw)) return null;
  const c = Number(raw) / 1000;
  return c > -40 && c < 150 ? Math.round(c * 10) / 10 : null;
}

export async function readThermalZones(root = DEFAULT_SENSOR_ROOTS.thermal): Promise<TemperatureReading[]> {
  let names: string[];
  try {
    names = (await readdir(root)).filter((n) => /^thermal_zone\d+$/.test(n));
  } catch {
    return [];
  }
  names.sort((a, b) => Number(a.slice(12)) - Number(b.slice(12)));
  const out = await Promise.all(
    names.map(async (n) => {
      const [type, temp] = await Promise.all([text(join(root, n, 'type')), text(join(root, n, 'temp'))]);
      const c = celsius(temp);
      return c === null ? null : { sensor: type || n, celsius: c };
    }),
  );
  return out.filter((r): r is TemperatureReading => r !== null);
}

export async function readHwmon(root = DEFAULT_SENSOR_ROOTS.hwmon): Promise<TemperatureReading[]> {
  let dirs: string[];
  try {
    dirs = (await readdir(root)).filter((n) => /^hwmon\d+$/.test(n));
  } catch {
    return [];
  }
  const out: TemperatureReading[] = [];
  for (const d of dirs.sort()) {
    const name = (await text(join(root, d, 'name'))) ?? d;
    let files: string[];
    try {
      files = await readdir(join(root, d));
    } catch {
      continue;
    }
    for (const f of files.filter((x) => /^temp\d+_input$/.test(x)).sort()) {
      const c = celsius(await text(join(root, d, f)));
      if (c === null) continue;
      const label = await text(join(root, d, f.replace('_input', '_label')));
      out.push({ sensor: `${name}/${label ?? f.replace('_input', '')}`, celsius: c });
    }
  }
  return out;
}

export async function readTemperatures(roots: SensorRoots = DEFAULT_SENSOR_ROOTS): Promise<TemperatureReading[]> {
  const [zones, hwmon] = await Promise.all([readThermalZones(roots.thermal), readHwmon(roots.hwmon)]);
  return [...zones, ...hwmon];
}
