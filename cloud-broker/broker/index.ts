export { startBroker, type Authenticate, type BrokerOptions, type RunningBroker } from './broker.js';
export { canPublish, canSubscribe, clientIdAllowed, type Identity } from './acl.js';
