import { useId, useRef, useState, type FormEvent, type ReactNode } from "react";

import type { JsonSchema } from "../api/openapi";
import { ApiError } from "../api/errors";
import { ErrorMessage } from "../components/States";
import { buildValue, chosenVariant, errorsForDraft, fieldsOf, initialDraft, orderFields, setAt, variantDraft, type Draft, type DraftValue, type Errors, type Field } from "./schema";

export type WidgetProps = {
  id: string;
  field: Field;
  value: DraftValue;
  onChange: (value: DraftValue) => void;
  invalid: boolean;
  describedBy: string | undefined;
  draft: Draft;
  /** Set another field by its dotted path (e.g. a model picker choosing the params kind). */
  set: (path: string, value: DraftValue) => void;
};

export type Widgets = Record<string, (props: WidgetProps) => ReactNode>;

type FieldsProps = {
  schema: JsonSchema;
  draft: Draft;
  rootDraft: Draft;
  errors: Errors;
  onChange: (path: string, value: DraftValue) => void;
  widgets: Widgets;
  hidden: Set<string>;
  idPrefix: string;
  prefix?: string;
  order?: string[];
};

function DefaultWidget({ id, field, value, onChange, invalid, describedBy }: WidgetProps): ReactNode {
  const s = field.schema;
  const common = { id, "aria-invalid": invalid || undefined, "aria-describedby": describedBy, "aria-required": field.required || undefined };
  switch (field.kind) {
    case "enum":
      return (
        <select {...common} value={String(value ?? "")} onChange={(e) => onChange(e.target.value)}>
          {field.required ? (
            <option value="" disabled>
              Choose…
            </option>
          ) : (
            <option value="">(default)</option>
          )}
          {(s.enum ?? []).map((option) => (
            <option key={String(option)} value={String(option)}>
              {String(option)}
            </option>
          ))}
        </select>
      );
    case "integer":
    case "number": {
      const step = field.kind === "integer" ? 1 : "any";
      return (
        <input
          {...common}
          type="number"
          inputMode={field.kind === "integer" ? "numeric" : "decimal"}
          step={step}
          min={s.minimum ?? s.exclusiveMinimum}
          max={s.maximum ?? s.exclusiveMaximum}
          placeholder={field.nullable ? "(none)" : undefined}
          value={String(value ?? "")}
          onChange={(e) => onChange(e.target.value)}
        />
      );
    }
    case "boolean":
      return <input {...common} type="checkbox" checked={value === true} onChange={(e) => onChange(e.target.checked)} />;
    case "file":
      return (
        <input
          {...common}
          type="file"
          onChange={(e) => onChange(e.target.files?.[0] ?? null)}
        />
      );
    case "text":
    case "json":
      return <textarea {...common} rows={field.kind === "json" ? 3 : 2} value={String(value ?? "")} onChange={(e) => onChange(e.target.value)} />;
    case "tuple": {
      const items = (value as string[]) ?? [];
      return (
        <span className="tuple" role="group" aria-describedby={describedBy}>
          {(s.prefixItems ?? []).map((item, i) => (
            <input
              key={i}
              id={i === 0 ? id : `${id}-${i}`}
              aria-label={`${field.title} ${i + 1}`}
              aria-invalid={invalid || undefined}
              type="number"
              step={item.type === "integer" ? 1 : "any"}
              min={item.minimum}
              max={item.maximum}
              value={items[i] ?? ""}
              onChange={(e) => onChange(items.map((v, j) => (j === i ? e.target.value : v)))}
            />
          ))}
        </span>
      );
    }
    case "multi": {
      const chosen = new Set((value as string[]) ?? []);
      return (
        <span className="checks" role="group" aria-describedby={describedBy} id={id}>
          {(s.items?.enum ?? []).map((option) => {
            const o = String(option);
            return (
              <label key={o} className="check-option">
                <input
                  type="checkbox"
                  checked={chosen.has(o)}
                  onChange={(e) => {
                    const next = new Set(chosen);
                    if (e.target.checked) next.add(o);
                    else next.delete(o);
                    onChange([...next]);
                  }}
                />
                {o}
              </label>
            );
          })}
        </span>
      );
    }
    case "list":
      if (s.items?.type === "string") {
        return (
          <textarea {...common} rows={2} placeholder={field.nullable ? "(none) — one per line, or comma-separated" : "one per line, or comma-separated"} value={String(value ?? "")} onChange={(e) => onChange(e.target.value)} />
        );
      }
      return (
        <input {...common} type="text" placeholder={field.nullable ? "(none) — comma-separated" : "comma-separated"} value={String(value ?? "")} onChange={(e) => onChange(e.target.value)} />
      );
    default:
      return (
        <input
          {...common}
          type="text"
          maxLength={s.maxLength}
          placeholder={field.nullable ? "(none)" : undefined}
          value={String(value ?? "")}
          onChange={(e) => onChange(e.target.value)}
        />
      );
  }
}

export function SchemaFields({ schema, draft, rootDraft, errors, onChange, widgets, hidden, idPrefix, prefix = "", order }: FieldsProps): ReactNode {
  return (
    <div className="fields">
      {orderFields(fieldsOf(schema, prefix), order).map((field) => {
        if (hidden.has(field.path) || (field.kind === "const" && !widgets[field.path])) return null;
        const id = `${idPrefix}-${field.path.replace(/\./g, "-")}`;
        if (field.kind === "object" && !widgets[field.path]) {
          const optional = field.nullable && !field.required;
          const on = draft[field.name] !== null && draft[field.name] !== undefined;
          const toggleId = `${idPrefix}-${field.path.replace(/\./g, "-")}-on`;
          return (
            <fieldset key={field.path} className="nested">
              <legend>
                {optional ? (
                  <label htmlFor={toggleId} className="inline">
                    <input
                      id={toggleId}
                      type="checkbox"
                      checked={on}
                      onChange={(e) => onChange(field.path, e.target.checked ? initialDraft(field.schema) : null)}
                    />{" "}
                    {field.title}
                  </label>
                ) : (
                  field.title
                )}
              </legend>
              {field.description && <p className="help">{field.description}</p>}
              {(!optional || on) && <SchemaFields
                schema={field.schema}
                draft={(draft[field.name] as Draft) ?? {}}
                rootDraft={rootDraft}
                errors={errors}
                onChange={onChange}
                widgets={widgets}
                hidden={hidden}
                idPrefix={idPrefix}
                prefix={field.path}
                order={order}
              />}
            </fieldset>
          );
        }
        if (field.kind === "variant" && !widgets[field.path]) {
          const current = draft[field.name] as Draft | null | undefined;
          const index = chosenVariant(field, current);
          const variant = field.variants![index];
          return (
            <fieldset key={field.path} className="nested" data-field={field.path}>
              <legend>{field.title}</legend>
              {field.description && <p className="help">{field.description}</p>}
              <div className="field field-enum">
                <label htmlFor={`${id}-variant`} className="label">
                  {field.title}: kind
                </label>
                <select id={`${id}-variant`} value={String(index)} onChange={(e) => onChange(field.path, variantDraft(field, Number(e.target.value)))}>
                  {field.variants!.map((v, i) => (
                    <option key={i} value={String(i)}>
                      {v.title ?? `option ${i + 1}`}
                    </option>
                  ))}
                </select>
                {variant.description && <span className="help">{variant.description.split("\n")[0]}</span>}
              </div>
              <SchemaFields
                schema={variant}
                draft={current ?? {}}
                rootDraft={rootDraft}
                errors={errors}
                onChange={onChange}
                widgets={widgets}
                hidden={hidden}
                idPrefix={idPrefix}
                prefix={field.path}
                order={order}
              />
            </fieldset>
          );
        }
        const error = errors[field.path];
        const helpId = field.description ? `${id}-help` : undefined;
        const errorId = error ? `${id}-error` : undefined;
        const describedBy = [errorId, helpId].filter(Boolean).join(" ") || undefined;
        const Widget = widgets[field.path] ?? DefaultWidget;
        const isGroup = field.kind === "tuple" || field.kind === "multi";
        return (
          <div key={field.path} className={`field field-${field.kind}${error ? " has-error" : ""}`} data-field={field.path}>
            {isGroup ? (
              <span className="label" id={`${id}-label`}>
                {field.title}
                {field.required && <span aria-hidden="true"> *</span>}
              </span>
            ) : (
              <label htmlFor={id} className={field.kind === "boolean" ? "label inline" : "label"}>
                {field.title}
                {field.required && <span aria-hidden="true"> *</span>}
              </label>
            )}
            <Widget
              id={id}
              field={field}
              value={draft[field.name] ?? null}
              onChange={(v) => onChange(field.path, v)}
              invalid={Boolean(error)}
              describedBy={describedBy}
              draft={rootDraft}
              set={onChange}
            />
            {error && (
              <span className="field-error" id={errorId}>
                {error}
              </span>
            )}
            {field.description && (
              <span className="help" id={helpId}>
                {field.description}
              </span>
            )}
          </div>
        );
      })}
    </div>
  );
}

type FormProps = {
  schema: JsonSchema;
  onSubmit: (value: Record<string, unknown>) => Promise<unknown>;
  submitLabel: string;
  initial?: Record<string, DraftValue>;
  widgets?: Widgets;
  hidden?: string[];
  /** Called with every edit, e.g. to load choices that depend on a field. */
  onDraftChange?: (draft: Draft) => void;
  /** Checks the schema cannot express; return errors by field path. */
  extraValidate?: (value: Record<string, unknown>) => Errors;
  children?: ReactNode;
  label: string;
  /** Field paths to show first (the schema's order otherwise). */
  order?: string[];
};

/**
 * A whole form from a request-body schema: fields, defaults, client-side checks, and
 * the API's own error (attached to its field when the API names one).
 */
export function SchemaForm({ schema, onSubmit, submitLabel, initial, widgets = {}, hidden = [], onDraftChange, extraValidate, children, label, order }: FormProps): ReactNode {
  const idPrefix = useId().replace(/:/g, "");
  const [draft, setDraft] = useState<Draft>(() => {
    let d = initialDraft(schema);
    for (const [path, v] of Object.entries(initial ?? {})) d = setAt(d, path, v);
    return d;
  });
  const [errors, setErrors] = useState<Errors>({});
  const [serverError, setServerError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const formRef = useRef<HTMLFormElement>(null);

  const change = (path: string, value: DraftValue) => {
    setDraft((d) => {
      const next = setAt(d, path, value);
      onDraftChange?.(next);
      return next;
    });
    if (errors[path]) setErrors(({ [path]: _gone, ...rest }) => rest);
  };

  const focusFirstError = () => {
    requestAnimationFrame(() => {
      formRef.current?.querySelector<HTMLElement>("[aria-invalid='true'], .has-error input, .has-error select")?.focus();
    });
  };

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const { value, errors: found } = buildValue(schema, draft);
    const all = { ...found, ...(Object.keys(found).length ? {} : (extraValidate?.(value) ?? {})) };
    setErrors(all);
    setServerError(null);
    if (Object.keys(all).length) {
      focusFirstError();
      return;
    }
    setBusy(true);
    try {
      await onSubmit(value);
    } catch (error) {
      setServerError(error);
      if (error instanceof ApiError) setErrors(errorsForDraft(draft, error.fields));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form ref={formRef} className="schema-form" onSubmit={submit} noValidate aria-label={label}>
      <SchemaFields
        schema={schema}
        draft={draft}
        rootDraft={draft}
        errors={errors}
        onChange={change}
        widgets={widgets}
        hidden={new Set(hidden)}
        idPrefix={idPrefix}
        order={order}
      />
      {Object.keys(errors).length > 0 && !serverError && (
        <p className="form-error" role="alert">
          Please fix the {Object.keys(errors).length === 1 ? "field" : "fields"} marked above.
        </p>
      )}
      {serverError !== null && <ErrorMessage error={serverError} title="The API refused this" />}
      {children}
      <div className="actions">
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Working…" : submitLabel}
        </button>
      </div>
    </form>
  );
}
