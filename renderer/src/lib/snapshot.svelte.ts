/**
 * A plain copy of a value that may be (or contain) $state proxies. chart.js defines hidden
 * properties on the data arrays it is given, which $state proxies refuse (state_descriptors_fixed).
 */
export function plain<T>(value: T): T {
  return $state.snapshot(value) as T;
}
