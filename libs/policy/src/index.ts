export { StaticPolicy, type PolicyDecision, type StaticPolicyRule } from './static-policy';
