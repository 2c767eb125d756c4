export const SHARED = new URL('../../../shared/', import.meta.url)
