// The three agents. They run inside the enclave, on plaintext, and never see Temporal.
// Stand-ins for model calls: deterministic, so tests can check exactly what each one produced.

/** research: the confidential brief → findings. */
export function research(brief) {
  if (typeof brief?.question !== 'string' || brief.question.length === 0) throw new TypeError('brief.question must be a non-empty string');
  const sources = Array.isArray(brief.sources) ? brief.sources : [];
  // Errors carry data, as real ones do: this message holds the confidential question.
  if (sources.length === 0) throw new Error(`research found no sources for "${brief.question}"`);
  return {
    question: brief.question,
    findings: sources.map((s, i) => ({ id: i + 1, source: s, note: `${s}: relevant to "${brief.question}"` })),
  };
}

/** analysis: findings → an assessment with a confidence. */
export function analysis(notes) {
  const n = notes.findings.length;
  return {
    question: notes.question,
    findings: notes.findings,
    assessment: n >= 2 ? 'supported by independent sources' : 'insufficient evidence',
    confidence: Math.min(0.95, 0.4 + 0.2 * n),
  };
}

/** report: assessment → the final report. */
export function report(assessed) {
  return {
    title: `Report: ${assessed.question}`,
    verdict: assessed.assessment,
    confidence: assessed.confidence,
    citations: assessed.findings.map((f) => `[${f.id}] ${f.source}`),
  };
}

/** The agents in pipeline order, by activity name. */
export const agents = { research, analysis, report };

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** JSON in and out as bytes: the shape a sealed-activity handler works on. */
export const toBytes = (value) => encoder.encode(JSON.stringify(value));
export const fromBytes = (bytes) => JSON.parse(decoder.decode(bytes));
