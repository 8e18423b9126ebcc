import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * What a step-up binds besides method, URL, action, resource and amount (ADR 0014 amendment): the
 * request's query as sent and the fields its service provider binds (`{ query, fields }`), shown
 * to the person and signed in the step-up document. Null for step-ups recorded before.
 */
export class StepUpBound1764000013000 implements MigrationInterface {
  name = 'StepUpBound1764000013000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE step_ups ADD COLUMN bound jsonb');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE step_ups DROP COLUMN bound');
  }
}
