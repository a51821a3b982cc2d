// The public read API, relative to the page (`/dashboard/` → `/v1/…`), so a proxy that
// serves the tracker under a path prefix works too.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** A path segment: ids are arbitrary UTF-8, `/` and `%` included. */
export const seg = (text) => encodeURIComponent(text);

/** GET `path` (relative to the server root) with `query` (skipping empty values) → JSON. */
export async function get(path, query = {}) {
  const url = new URL(`../${path}`, document.baseURI);
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(name, value);
  }
  let response;
  try {
    response = await fetch(url, {headers: {accept: 'application/json'}});
  } catch (error) {
    throw new ApiError(0, 'network_error', `the server did not answer (${error.message})`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(response.status, 'bad_answer', `GET ${url.pathname} answered ${response.status}, not JSON`);
  }
  if (!response.ok) {
    const error = (body && body.error) || {};
    throw new ApiError(response.status, error.code || 'error', error.message || `status ${response.status}`);
  }
  return body;
}

export const products = () => get('v1/products');
export const boards = (product) => get(`v1/products/${seg(product)}/boards`);
export const entries = (product, board, query) =>
  get(`v1/products/${seg(product)}/boards/${seg(board)}/entries`, query);
export const standing = (product, board, user, query) =>
  get(`v1/products/${seg(product)}/boards/${seg(board)}/players/${seg(user)}`, query);
export const rating = (product, board, user) =>
  get(`v1/products/${seg(product)}/boards/${seg(board)}/players/${seg(user)}/rating`);
export const history = (product, board, user, limit = 100) =>
  get(`v1/products/${seg(product)}/boards/${seg(board)}/players/${seg(user)}/history`, {limit});
export const stats = (product, user) =>
  get(`v1/products/${seg(product)}/players/${seg(user)}/stats`);
export const workerHealth = () => get('v1/health/worker');
