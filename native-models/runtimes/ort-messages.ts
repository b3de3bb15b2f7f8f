/**
 * onnxruntime's errors carry C++ source locations, function signatures, status prefixes and
 * newlines. Users get one line that keeps only what explains the problem.
 */
export function condenseOrtMessage(raw: string, file?: string): string {
  let m = raw.replace(/\s+/g, ' ').trim();
  // "[ONNXRuntimeError] : 1 : FAIL : ..." status prefixes
  m = m.replace(/\[ONNXRuntimeError\] : \d+ : [A-Z_]+ : /g, '');
  // "/onnxruntime_src/.../x.cc:136 onnxruntime::Foo(...)::<lambda()> cond was false. <reason>"
  const located = /^\S+\.(?:cc|cpp|h|hpp):\d+ (.*)$/.exec(m);
  if (located) {
    const rest = located[1]!;
    const afterCheck = / was false\. (.+)$/.exec(rest);
    m = afterCheck ? afterCheck[1]! : rest;
  }
  // "Load model from /x.onnx failed:Protobuf parsing failed." — callers name the file themselves
  if (file) m = m.replace(`Load model from ${file} failed:`, '').trim();
  m = m.replace(/^Load model from \S+ failed:/, '').trim();
  return m.length > 400 ? m.slice(0, 397) + '...' : m;
}
