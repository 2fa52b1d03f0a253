/**
 * Reads infra/ the way the infra tests need it: every .bicep file parsed with tree-sitter-bicep (WASM, through
 * web-tree-sitter; no Bicep CLI here), plus small helpers that walk the syntax trees (resources with their full
 * type, object properties by path, literal values). Policies are checked on the trees, not on raw text.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Language, Parser, type Node } from 'web-tree-sitter';

export type { Node };

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const infraDir = join(repoRoot, 'infra');

export interface BicepFile {
  /** Absolute path. */
  path: string;
  /** Path relative to the repository root, for messages. */
  name: string;
  source: string;
  root: Node;
}

export interface BicepResource {
  file: BicepFile;
  /** Symbolic name, e.g. `functionApp`. */
  symbol: string;
  /** Full resource type without API version, nested children included: `Microsoft.Web/sites/config`. */
  type: string;
  /** `existing` resources are references, not deployments: policies on properties skip them. */
  existing: boolean;
  /** The resource body (also for `[for …: {…}]` and `if (…) {…}` resources); null if it has none. */
  body: Node | null;
  node: Node;
}

let parserPromise: Promise<Parser> | undefined;

function bicepParser(): Promise<Parser> {
  parserPromise ??= (async () => {
    await Parser.init();
    const wasm = createRequire(import.meta.url).resolve('tree-sitter-bicep/tree-sitter-bicep.wasm');
    const parser = new Parser();
    parser.setLanguage(await Language.load(wasm));
    return parser;
  })();
  return parserPromise;
}

/** Parses Bicep text; `path` only names it in messages. */
export async function parseBicepSource(source: string, path: string): Promise<BicepFile> {
  const tree = (await bicepParser()).parse(source);
  if (!tree) throw new Error(`tree-sitter returned no tree for ${path}`);
  return { path, name: isAbsolute(path) ? relative(repoRoot, path) : path, source, root: tree.rootNode };
}

export async function parseBicep(path: string): Promise<BicepFile> {
  return parseBicepSource(readFileSync(path, 'utf8'), path);
}

/** Every .bicep file under infra/, recursively, in a stable order. */
export function bicepPaths(dir = infraDir): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return bicepPaths(path);
      return entry.name.endsWith('.bicep') ? [path] : [];
    })
    .sort();
}

export async function parseAllBicep(): Promise<BicepFile[]> {
  return Promise.all(bicepPaths().map(parseBicep));
}

/** ERROR and MISSING nodes, as `file:line:column kind "text"`. */
export function syntaxProblems(file: BicepFile): string[] {
  const problems: string[] = [];
  const visit = (node: Node): void => {
    if (node.type === 'ERROR' || node.isMissing) {
      const { row, column } = node.startPosition;
      const kind = node.isMissing ? `MISSING ${node.type}` : 'ERROR';
      problems.push(`${file.name}:${row + 1}:${column + 1} ${kind} ${JSON.stringify(node.text.slice(0, 60))}`);
    }
    for (const child of node.children) if (child) visit(child);
  };
  visit(file.root);
  return problems;
}

function namedChildren(node: Node): Node[] {
  return node.namedChildren.filter((child): child is Node => child !== null);
}

/** Nodes of a type anywhere under `node`. */
export function descendants(node: Node, type: string): Node[] {
  return node.descendantsOfType(type).filter((child): child is Node => child !== null);
}

const escapes: Record<string, string> = { n: '\n', r: '\r', t: '\t', $: '$', "'": "'", '\\': '\\' };

/**
 * The value of a literal: a string without interpolation, a boolean, a number or null. `undefined` for
 * anything computed (identifiers, calls, interpolated strings…).
 */
export function literal(node: Node | null | undefined): string | number | boolean | null | undefined {
  if (!node) return undefined;
  switch (node.type) {
    case 'boolean':
      return node.text === 'true';
    case 'number':
      return Number(node.text);
    case 'null':
      return null;
    case 'string': {
      const parts = namedChildren(node);
      if (parts.some((part) => part.type === 'interpolation')) return undefined;
      return parts
        .map((part) => (part.type === 'escape_sequence' ? (escapes[part.text.slice(1)] ?? part.text) : part.text))
        .join('');
    }
    default:
      return undefined;
  }
}

/** The properties directly in an object literal, in order (nested resource declarations skipped). */
export function objectProperties(object: Node | null): { key: string; value: Node | null }[] {
  if (!object || object.type !== 'object') return [];
  return namedChildren(object)
    .filter((child) => child.type === 'object_property')
    .flatMap((property) => {
      const [key, value] = namedChildren(property).filter((child) => child.type !== 'comment');
      // A nested `resource` sits in an object_property of its own; it is no key/value pair.
      if (!key || key.type === 'resource_declaration') return [];
      const name = key.type === 'string' ? literal(key) : key.text;
      return typeof name === 'string' ? [{ key: name, value: value ?? null }] : [];
    });
}

/** The value at a dotted path inside an object literal, e.g. `properties.administrators.azureADOnlyAuthentication`. */
export function property(object: Node | null, path: string): Node | null {
  let current: Node | null = object;
  for (const key of path.split('.')) {
    current = objectProperties(current).find((p) => p.key === key)?.value ?? null;
    if (!current) return null;
  }
  return current;
}

/** The object a declaration assigns, looking through `[for …: {…}]` and `if (…) {…}`. */
export function declarationBody(declaration: Node): Node | null {
  let value = namedChildren(declaration).at(-1) ?? null;
  if (value?.type === 'for_statement' || value?.type === 'if_statement') value = namedChildren(value).at(-1) ?? null;
  return value?.type === 'object' ? value : null;
}

/** The type string of a resource or module declaration (`'Microsoft.X/y@2024-01-01'`, `'modules/x.bicep'`). */
function declaredString(declaration: Node): string {
  const typeNode = namedChildren(declaration).find((child) => child.type === 'string');
  return (literal(typeNode) as string | undefined) ?? '';
}

function enclosingResource(node: Node): Node | null {
  for (let current = node.parent; current; current = current.parent) {
    if (current.type === 'resource_declaration') return current;
  }
  return null;
}

function fullType(declaration: Node): string {
  const declared = declaredString(declaration).split('@')[0] ?? '';
  const parent = enclosingResource(declaration);
  return parent ? `${fullType(parent)}/${declared}` : declared;
}

/** Every resource declared in a file, nested children included, with its full type. */
export function resources(file: BicepFile): BicepResource[] {
  return descendants(file.root, 'resource_declaration').map((node) => ({
    file,
    symbol: namedChildren(node).find((child) => child.type === 'identifier')?.text ?? '',
    type: fullType(node),
    existing: node.children.some((child) => child?.type === 'existing'),
    body: declarationBody(node),
    node,
  }));
}

export function resourcesOfType(files: BicepFile[], type: string): BicepResource[] {
  return files.flatMap(resources).filter((r) => r.type.toLowerCase() === type.toLowerCase());
}

export interface Declaration {
  name: string;
  node: Node;
  /** Names of the decorators above it, e.g. `secure`, `description`. */
  decorators: string[];
  /** The declared type as written (`string`, `bool`, `string[]`…); '' when there is none. */
  type: string;
  /** Arguments of one decorator, e.g. `argumentsOf('allowed')` → the array node; [] when absent. */
  argumentsOf(decorator: string): Node[];
}

/** Top-level `param` / `output` / `module` / `var` declarations of a file. */
export function declarations(
  file: BicepFile,
  type: 'parameter_declaration' | 'output_declaration' | 'module_declaration' | 'variable_declaration',
): Declaration[] {
  return namedChildren(file.root)
    .filter((node) => node.type === type)
    .map((node) => {
      const previous = node.previousNamedSibling;
      const calls = previous?.type === 'decorators' ? descendants(previous, 'decorator').map((d) => namedChildren(d)[0]) : [];
      const callOf = (name: string) => calls.find((call) => call?.childForFieldName('function')?.text === name);
      return {
        name: namedChildren(node).find((c) => c.type === 'identifier')?.text ?? '',
        node,
        decorators: calls.map((call) => call?.childForFieldName('function')?.text ?? ''),
        type: namedChildren(node).find((c) => c.type === 'type')?.text ?? '',
        argumentsOf: (name: string) => {
          const args = callOf(name)?.childForFieldName('arguments');
          return args ? namedChildren(args) : [];
        },
      };
    });
}

/** The default value of a `param` (the expression after `=`), or null. */
export function parameterDefault(parameter: Node): Node | null {
  const children = parameter.children.filter((child): child is Node => child !== null);
  const equals = children.findIndex((child) => child.type === '=');
  return equals >= 0 ? (children[equals + 1] ?? null) : null;
}

/** The path string of a `module` declaration or an `import … from` statement. */
export function referencedPath(node: Node): string {
  return declaredString(node);
}

/** The value of a top-level `var` of a file. */
function variableValue(file: BicepFile, name: string): Node | null {
  const declaration = declarations(file, 'variable_declaration').find((d) => d.name === name);
  return declaration ? (namedChildren(declaration.node).at(-1) ?? null) : null;
}

/** The iterable of the `for` that declares `name` as its loop variable around `node`, if any. */
function loopIterable(node: Node, name: string): Node | null {
  for (let current = node.parent; current; current = current.parent) {
    if (current.type !== 'for_statement') continue;
    const children = namedChildren(current);
    const variable = children[0];
    const declares =
      variable?.text === name ||
      (variable?.type === 'for_loop_parameters' && namedChildren(variable)[0]?.text === name);
    if (declares) return children[1] ?? null;
  }
  return null;
}

/**
 * The string literals an expression can evaluate to, following top-level variables, `var.member` lookups into
 * object variables, arrays and loop variables. Calls and parameters resolve to nothing.
 */
export function resolveStrings(file: BicepFile, node: Node | null): string[] {
  if (!node) return [];
  const value = literal(node);
  if (typeof value === 'string') return [value];
  switch (node.type) {
    case 'array':
      return namedChildren(node).flatMap((item) => resolveStrings(file, item));
    case 'identifier': {
      const iterable = loopIterable(node, node.text);
      return resolveStrings(file, iterable ?? variableValue(file, node.text));
    }
    case 'member_expression': {
      const object = node.childForFieldName('object');
      const member = node.childForFieldName('property')?.text;
      if (object?.type !== 'identifier' || !member) return [];
      return resolveStrings(file, property(variableValue(file, object.text), member));
    }
    default:
      return [];
  }
}

/** The resource a `scope:` expression names (`st`, `subs[i]`, `ns::topic`), found by symbol in the same file. */
export function resolveScope(file: BicepFile, node: Node | null): BicepResource | undefined {
  let target = node;
  if (target?.type === 'subscript_expression') target = namedChildren(target)[0] ?? null;
  if (target?.type === 'resource_expression') target = namedChildren(target).at(-1) ?? null;
  if (target?.type !== 'identifier') return undefined;
  const matches = resources(file).filter((r) => r.symbol === target.text);
  return matches.length === 1 ? matches[0] : undefined;
}
