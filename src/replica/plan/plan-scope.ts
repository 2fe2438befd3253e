/**
 * Runs that cover part of the collection: a push notification pulls just the
 * repositories it names, and the daemon's schedule groups split the
 * collection into parts pulled at different times. The planner still plans
 * the whole manifest (purge protection and alternates need the whole
 * picture); this narrows its plan to the part the run is responsible for.
 */
import type { SyncAction, SyncPlan } from './planner.js';

export interface ScopeOptions {
  /** Only these manifest paths. */
  only?: readonly string[] | undefined;
  /** Only the manifest paths this accepts. */
  scope?: ((path: string) => boolean) | undefined;
}

/** A predicate for the run's part of the collection, or null when the run covers all of it. */
export function runScope(opts: ScopeOptions): ((path: string) => boolean) | null {
  if (!opts.only && !opts.scope) return null;
  const only = opts.only ? new Set(opts.only) : null;
  const scope = opts.scope;
  return (path) => (only === null || only.has(path)) && (scope === undefined || scope(path));
}

/** The plan with everything outside `inScope` left out (the same plan when inScope is null). */
export function restrictPlan(plan: SyncPlan, inScope: ((path: string) => boolean) | null): SyncPlan {
  if (!inScope) return plan;
  const actions: SyncAction[] = plan.actions.filter((a) => inScope(a.path));
  const problems = plan.problems.filter((p) => inScope(p.path));
  const summary = {
    ...plan.summary,
    clone: 0,
    update: 0,
    metadata: 0,
    purge: 0,
    skip: 0,
    problems: problems.length,
    total: actions.length,
  };
  for (const a of actions) summary[a.kind] += 1;
  const restricted: SyncPlan = {
    actions,
    problems,
    filtered: plan.filtered,
    stale: plan.stale.filter(inScope),
    forget: plan.forget.filter(inScope),
    summary,
  };
  // a refusal to purge matters to this run only if it would have purged something in it
  if (plan.purgeBlocked && plan.purgeBlocked.paths.some(inScope)) restricted.purgeBlocked = plan.purgeBlocked;
  return restricted;
}
