// What the daemon composes from agent/system (the hardware probe lives in probe*.ts, separately).
export { createNotifier, type Notifier, type NotifierOptions } from './sd-notify.js';
export { startWatchdog, watchdogIntervalMs, type WatchdogHandle } from './watchdog.js';
export {
  onShutdown,
  onReload,
  type ShutdownHandler,
  type ShutdownContext,
  type ShutdownOptions,
  type ShutdownHandle,
  type ReloadHandler,
} from './signals.js';
