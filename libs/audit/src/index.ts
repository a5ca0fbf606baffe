export { AuditLog, type AuditRecord, type AuditLogOptions, type AuditEntry } from './audit-log';
